using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using ModelCar.Common.IO;
using ModelCar.HuggingFace;
using ModelCar.Oci;

namespace ModelCar.Packing;

/// <summary>
/// The layer digests of earlier runs, keyed by <see cref="LayerPlan.Key"/> (entries, source file
/// identity — path, size, mtime, inode — and the pack options that go into the bytes). A re-run
/// of an unchanged model takes each layer's digest from here instead of reading the file; a
/// changed or unknown file has another key and is read (and hashed) again. With each digest the
/// record keeps the sha256 of every file in the layer (hashed inline during that one read), so the
/// re-run annotates the layers as the first run did, still without reading.
/// <para>
/// Where: <c>MODEL/.oci-pack/layers.json</c> (that folder is never packed), or
/// <c>STATE_DIR/layers.json</c> when the model directory is read-only; for an <c>hf://</c> model (no
/// directory) under the Hugging Face home (<see cref="DefaultHubPath"/>). The record is a cache: a
/// missing, unreadable or unwritable one only costs a read; a record that is wrong (a file rewritten
/// with the same size and mtime on the same inode) is caught where the bytes are sent again
/// (registry uploads verify the digest), not where a registry already holds the old blob.
/// </para>
/// </summary>
public sealed class LayerDigestRecord
{
    public const string DirectoryName = HubPaths.OciPackStateFolder;
    public const string FileName = "layers.json";

    /// <summary>Version 1 records had no file hashes: they are not trusted (one read re-creates the record).</summary>
    public const int FormatVersion = 2;

    private readonly Dictionary<string, LayerRecordEntry> _layers;
    private readonly ILogger _logger;
    private readonly object _lock = new();
    private bool _changed;
    private bool _unwritable; // warned once: no more tries in this run

    private LayerDigestRecord(string path, Dictionary<string, LayerRecordEntry> layers, ILogger logger)
    {
        Path = path;
        _layers = layers;
        _logger = logger;
    }

    public string Path { get; }

    /// <summary>Where the record of <paramref name="modelDir"/> lives: its .oci-pack folder, or <paramref name="stateDir"/>.</summary>
    public static string PathFor(string modelDir, string? stateDir) =>
        stateDir is null ? System.IO.Path.Combine(modelDir, DirectoryName, FileName) : System.IO.Path.Combine(System.IO.Path.GetFullPath(stateDir), FileName);

    /// <summary>The folder under the Hugging Face home that holds the records of <c>hf://</c> models.</summary>
    public const string HubHomeFolder = "oci-pack";

    /// <summary>
    /// Where the record of an <c>hf://</c> model lives when no state directory is given: under the Hugging Face
    /// home as huggingface_hub finds it — <c>HF_HOME</c>, else <c>$XDG_CACHE_HOME/huggingface</c>, else
    /// <c>$HOME/.cache/huggingface</c> (an empty variable counts as unset) — in
    /// <c>oci-pack/{models|datasets}--ORG--NAME/layers.json</c> (huggingface_hub's folder naming; its own cache
    /// is <c>hub/</c> beside it). Null when none of the three is set. Whether that place is writable is the
    /// caller's to find out (a cache: without it a re-run only reads the model again).
    /// </summary>
    public static string? DefaultHubPath(string repoTypeName, string repoId, Func<string, string?> env)
    {
        string? home = env("HF_HOME") is { Length: > 0 } hf ? hf
            : env("XDG_CACHE_HOME") is { Length: > 0 } xdg ? System.IO.Path.Combine(xdg, "huggingface")
            : env("HOME") is { Length: > 0 } user ? System.IO.Path.Combine(user, ".cache", "huggingface")
            : null;
        return home is null ? null
            : System.IO.Path.Combine(System.IO.Path.GetFullPath(home), HubHomeFolder, $"{repoTypeName}s--{repoId.Replace("/", "--", StringComparison.Ordinal)}", FileName);
    }

    /// <summary>Reads the record (an absent or unreadable one is empty: only a warning for the latter).</summary>
    public static LayerDigestRecord Open(string path, ILogger logger)
    {
        var layers = new Dictionary<string, LayerRecordEntry>(StringComparer.Ordinal);
        try
        {
            if (File.Exists(path))
            {
                var file = JsonSerializer.Deserialize(File.ReadAllBytes(path), LayerRecordJson.Default.LayerRecordFile);
                if (file is { Version: FormatVersion })
                {
                    foreach (var (k, v) in file.Layers)
                    {
                        if (v.Digest is { } text && Digest.TryParse(text, out var d) && v.Files is { } files)
                        {
                            layers[k] = new LayerRecordEntry(d, files);
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

    public LayerRecordEntry? Get(string key)
    {
        lock (_lock)
        {
            return key.Length > 0 && _layers.TryGetValue(key, out var d) ? d : null;
        }
    }

    /// <param name="files">Tar path → sha256 (hex) of each file of the layer.</param>
    public void Set(string key, Digest digest, IReadOnlyDictionary<string, string> files)
    {
        if (key.Length == 0)
        {
            return;
        }
        lock (_lock)
        {
            _changed |= !_layers.TryGetValue(key, out var old) || old.Digest != digest
                || old.Files.Count != files.Count || files.Any(f => old.Files.GetValueOrDefault(f.Key) != f.Value);
            _layers[key] = new LayerRecordEntry(digest, new SortedDictionary<string, string>(files.ToDictionary(), StringComparer.Ordinal));
        }
    }

    /// <summary>
    /// Writes the record if it changed (temp file + rename, 0644: a reader or a kill never sees half a record);
    /// called after each committed layer. A place that cannot be written is one warning (the next run reads the model again).
    /// </summary>
    public void Save()
    {
        lock (_lock)
        {
            if (!_changed || _unwritable)
            {
                return;
            }
            try
            {
                Files.EnsureDirectory(System.IO.Path.GetDirectoryName(Path)!);
                var file = new LayerRecordFile
                {
                    Version = FormatVersion,
                    Layers = new SortedDictionary<string, LayerRecordFileEntry>(
                        _layers.ToDictionary(p => p.Key, p => new LayerRecordFileEntry { Digest = p.Value.Digest.ToString(), Files = new SortedDictionary<string, string>(p.Value.Files.ToDictionary(), StringComparer.Ordinal) }),
                        StringComparer.Ordinal),
                };
                Files.WriteAllBytesAtomic(Path, JsonSerializer.SerializeToUtf8Bytes(file, LayerRecordJson.Default.LayerRecordFile));
                _changed = false;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                _unwritable = true;
                _logger.LogWarning("cannot write the layer record {Path} ({Error}): a re-run will read the model again (give a writable state directory)", Path, e.Message);
            }
        }
    }
}

/// <summary>A recorded layer: its digest and the sha256 (hex) of each of its files by tar path.</summary>
public sealed record LayerRecordEntry(Digest Digest, IReadOnlyDictionary<string, string> Files);

public sealed class LayerRecordFile
{
    [JsonPropertyName("version")]
    public int Version { get; init; }

    [JsonPropertyName("layers")]
    public SortedDictionary<string, LayerRecordFileEntry> Layers { get; init; } = new(StringComparer.Ordinal);
}

public sealed class LayerRecordFileEntry
{
    [JsonPropertyName("digest")]
    public string? Digest { get; init; }

    /// <summary>Tar path → sha256 (hex) of each file in the layer.</summary>
    [JsonPropertyName("files")]
    public SortedDictionary<string, string>? Files { get; init; }
}

[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(LayerRecordFile))]
internal sealed partial class LayerRecordJson : JsonSerializerContext;
