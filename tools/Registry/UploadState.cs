using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.Extensions.Logging;
using ModelCar.Common.IO;
using ModelCar.Oci;

namespace ModelCar.Registry;

/// <summary>One open chunked upload session: where it is, and how far it got when last seen.</summary>
public sealed record UploadRecord
{
    public required string Registry { get; init; }
    public required string Repository { get; init; }
    public required string Digest { get; init; }
    public required long Size { get; init; }
    public required string Location { get; init; }
    public required long Offset { get; init; }
    public long MinChunkLength { get; init; }
    public required DateTimeOffset Updated { get; init; }
}

public sealed record UploadStateDocument
{
    public int Version { get; init; } = 1;
    public List<UploadRecord> Sessions { get; init; } = [];
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = true)]
[JsonSerializable(typeof(UploadStateDocument))]
internal sealed partial class UploadStateJson : JsonSerializerContext;

/// <summary>
/// The small state file that lets the next run resume an interrupted chunked upload: per destination
/// repository and blob digest, the session's upload URL and the offset the registry acknowledged.
/// Written (temp + rename, mode 0600: the URL carries the registry's upload state token) after the
/// POST and after every acknowledged chunk; a record is dropped when its blob is complete or its
/// session turns out dead. The next run asks the registry (GET the URL) where the session really is,
/// so a record that lags one chunk behind costs nothing. Records older than a week are pruned
/// (CNCF distribution purges upload sessions after 7 days by default). Every write re-reads the file
/// and merges, so runs pushing other destinations through the same file keep their records.
/// A write that fails (disk full, read-only) is logged once and turns recording off: the push goes on,
/// it just cannot be resumed across runs.
/// </summary>
public sealed class UploadStateStore
{
    public const string FileName = "registry-push-state.json";

    private static readonly TimeSpan MaxAge = TimeSpan.FromDays(7);
    private readonly object _lock = new();
    private readonly ILogger _logger;
    private bool _disabled;
    private bool _warnedUnreadable;

    private UploadStateStore(string path, ILogger logger)
    {
        Path = path;
        _logger = logger;
    }

    /// <summary>The state file.</summary>
    public string Path { get; }

    /// <summary>False once a write failed: sessions are then no longer recorded.</summary>
    public bool Enabled => !Volatile.Read(ref _disabled);

    /// <summary>
    /// Opens (or prepares) the state file at <paramref name="path"/>, checking that its directory can
    /// be written now. Throws <see cref="IOException"/> or <see cref="UnauthorizedAccessException"/>
    /// when it cannot; the caller decides whether that is fatal.
    /// </summary>
    public static UploadStateStore Open(string path, ILogger logger)
    {
        var full = System.IO.Path.GetFullPath(path);
        var dir = System.IO.Path.GetDirectoryName(full)!;
        Directory.CreateDirectory(dir);
        // probe: a read-only source directory (or volume) must be found now, not after the first chunk
        var probe = Files.TempNameFor(full);
        using (File.Create(probe, 1, FileOptions.DeleteOnClose))
        {
        }
        var store = new UploadStateStore(full, logger);
        _ = store.ReadAll(); // a corrupt file is reported (and ignored) at the start
        return store;
    }

    public UploadRecord? Find(string registry, string repository, Digest digest)
    {
        lock (_lock)
        {
            return ReadAll().FirstOrDefault(r => Matches(r, registry, repository, digest.ToString()));
        }
    }

    /// <summary>Records or updates a session; false if it could not be written (recording is then off).</summary>
    public bool Save(UploadRecord record)
    {
        return Update(list =>
        {
            list.RemoveAll(r => Matches(r, record.Registry, record.Repository, record.Digest));
            list.Add(record);
        });
    }

    public void Remove(string registry, string repository, Digest digest)
    {
        var d = digest.ToString();
        lock (_lock)
        {
            if (!File.Exists(Path) || !ReadAll().Any(r => Matches(r, registry, repository, d)))
            {
                return;
            }
        }
        Update(list => list.RemoveAll(r => Matches(r, registry, repository, d)));
    }

    private bool Update(Action<List<UploadRecord>> change)
    {
        if (!Enabled)
        {
            return false;
        }
        lock (_lock)
        {
            var list = ReadAll();
            change(list);
            list.RemoveAll(r => DateTimeOffset.UtcNow - r.Updated > MaxAge);
            try
            {
                if (list.Count == 0)
                {
                    Files.TryDelete(Path);
                    return true;
                }
                var bytes = JsonSerializer.SerializeToUtf8Bytes(new UploadStateDocument { Sessions = list }, UploadStateJson.Default.UploadStateDocument);
                var tmp = Files.TempNameFor(Path);
                try
                {
                    var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
                    if (!OperatingSystem.IsWindows())
                    {
                        options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
                    }
                    using (var fs = new FileStream(tmp, options))
                    {
                        fs.Write(bytes);
                        fs.Flush(flushToDisk: true);
                    }
                    File.Move(tmp, Path, overwrite: true);
                }
                catch
                {
                    Files.TryDelete(tmp);
                    throw;
                }
                return true;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Volatile.Write(ref _disabled, true);
                _logger.LogWarning("cannot write the upload state {Path} ({Error}): interrupted uploads of this run cannot be resumed by the next one", Path, e.Message);
                return false;
            }
        }
    }

    private List<UploadRecord> ReadAll()
    {
        try
        {
            if (!File.Exists(Path))
            {
                return [];
            }
            var doc = JsonSerializer.Deserialize(File.ReadAllBytes(Path), UploadStateJson.Default.UploadStateDocument);
            return doc?.Sessions.Where(r => r is { Registry: not null, Repository: not null, Digest: not null, Location: not null }).ToList() ?? [];
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException)
        {
            if (!_warnedUnreadable)
            {
                _warnedUnreadable = true;
                _logger.LogWarning("ignoring the upload state {Path}: {Error}", Path, e.Message);
            }
            return [];
        }
    }

    private static bool Matches(UploadRecord r, string registry, string repository, string digest) =>
        r.Registry == registry && r.Repository == repository && r.Digest == digest;
}
