using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using ModelCar.Common.IO;
using ModelCar.Oci;

namespace ModelCar.Packing;

/// <summary>
/// The layer digests of earlier runs, keyed by <see cref="LayerPlan.Key"/> (entries, source file
/// identity — path, size, mtime, inode — and the pack options that go into the bytes). A re-run
/// of an unchanged model takes each layer's digest from here instead of reading the file; a
/// changed or unknown file has another key and is read (and hashed) again.
/// <para>
/// Where: <c>MODEL/.oci-pack/layers.json</c> (that folder is never packed), or
/// <c>STATE_DIR/layers.json</c> when the model directory is read-only. The record is a cache: a
/// missing, unreadable or unwritable one only costs a read; a record that is wrong (a file rewritten
/// with the same size and mtime on the same inode) is caught where the bytes are sent again
/// (registry uploads verify the digest), not where a registry already holds the old blob.
/// </para>
/// </summary>
public sealed class LayerDigestRecord
{
    public const string DirectoryName = ".oci-pack";
    public const string FileName = "layers.json";

    private readonly Dictionary<string, Digest> _layers;
    private readonly ILogger _logger;
    private readonly object _lock = new();
    private bool _changed;

    private LayerDigestRecord(string path, Dictionary<string, Digest> layers, ILogger logger)
    {
        Path = path;
        _layers = layers;
        _logger = logger;
    }

    public string Path { get; }

    /// <summary>Where the record of <paramref name="modelDir"/> lives: its .oci-pack folder, or <paramref name="stateDir"/>.</summary>
    public static string PathFor(string modelDir, string? stateDir) =>
        stateDir is null ? System.IO.Path.Combine(modelDir, DirectoryName, FileName) : System.IO.Path.Combine(System.IO.Path.GetFullPath(stateDir), FileName);

    /// <summary>Reads the record (an absent or unreadable one is empty: only a warning for the latter).</summary>
    public static LayerDigestRecord Open(string path, ILogger logger)
    {
        var layers = new Dictionary<string, Digest>(StringComparer.Ordinal);
        try
        {
            if (File.Exists(path))
            {
                var file = JsonSerializer.Deserialize(File.ReadAllBytes(path), LayerRecordJson.Default.LayerRecordFile);
                if (file is { Version: 1 })
                {
                    foreach (var (k, v) in file.Layers)
                    {
                        if (Digest.TryParse(v, out var d))
                        {
                            layers[k] = d;
                        }
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            logger.LogWarning("layer record {Path} is unreadable ({Error}): every layer is read again", path, e.Message);
        }
        return new LayerDigestRecord(path, layers, logger);
    }

    public int Count => _layers.Count;

    public Digest? Get(string key)
    {
        lock (_lock)
        {
            return key.Length > 0 && _layers.TryGetValue(key, out var d) ? d : null;
        }
    }

    public void Set(string key, Digest digest)
    {
        if (key.Length == 0)
        {
            return;
        }
        lock (_lock)
        {
            _changed |= !_layers.TryGetValue(key, out var old) || old != digest;
            _layers[key] = digest;
        }
    }

    /// <summary>Writes the record if it changed; a place that cannot be written is a warning (the next run reads the model again).</summary>
    public void Save()
    {
        lock (_lock)
        {
            if (!_changed)
            {
                return;
            }
            try
            {
                Files.EnsureDirectory(System.IO.Path.GetDirectoryName(Path)!);
                var file = new LayerRecordFile { Version = 1, Layers = new SortedDictionary<string, string>(_layers.ToDictionary(p => p.Key, p => p.Value.ToString()), StringComparer.Ordinal) };
                Files.WriteAllBytesAtomic(Path, JsonSerializer.SerializeToUtf8Bytes(file, LayerRecordJson.Default.LayerRecordFile));
                _changed = false;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _logger.LogWarning("cannot write the layer record {Path} ({Error}): a re-run will read the model again (give a writable state directory)", Path, e.Message);
            }
        }
    }
}

public sealed class LayerRecordFile
{
    [JsonPropertyName("version")]
    public int Version { get; init; }

    [JsonPropertyName("layers")]
    public SortedDictionary<string, string> Layers { get; init; } = new(StringComparer.Ordinal);
}

[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(LayerRecordFile))]
internal sealed partial class LayerRecordJson : JsonSerializerContext;
