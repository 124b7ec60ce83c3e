using System.Text.Json;
using System.Text.Json.Serialization;
using ModelCar.Common;

namespace ModelCar.Packing;

/// <summary>What hf-fetch leaves in <c>DIR/.hf-fetch/snapshot.json</c> (only the fields oci-pack uses are required).</summary>
public sealed record HfSnapshot
{
    [JsonPropertyName("repoId")] public string? RepoId { get; init; }
    [JsonPropertyName("repoType")] public string? RepoType { get; init; }
    [JsonPropertyName("revision")] public string? Revision { get; init; }
    [JsonPropertyName("commit")] public string? Commit { get; init; }
    [JsonPropertyName("endpoint")] public string? Endpoint { get; init; }
    [JsonPropertyName("files")] public List<HfSnapshotFile>? Files { get; init; }

    public const string StateFolder = ".hf-fetch";
    public const string RelativePath = ".hf-fetch/snapshot.json";

    /// <summary>
    /// Null if <paramref name="modelDir"/> is no hf-fetch download or a finished one; else why it is not
    /// finished. hf-fetch deletes snapshot.json when a run starts and writes it when every file verified,
    /// so: no snapshot.json (a run still going, killed or failed: N = files verified so far, M = N + partial
    /// files), or files it lists that are missing or of another size (deleted since). Files the filter
    /// leaves out of the image do not count.
    /// </summary>
    public static string? IncompleteReason(string modelDir, HfSnapshot? snapshot, PathFilter filter)
    {
        var state = Path.Combine(modelDir, StateFolder);
        if (!Directory.Exists(state))
        {
            return null;
        }
        if (snapshot is not null)
        {
            var listed = (snapshot.Files ?? []).Where(f => f.Path is not null && filter.IsIncluded(f.Path)).ToList();
            var missing = listed.Where(f => new FileInfo(Path.Combine(modelDir, f.Path!)) is not { Exists: true } fi || fi.Length != f.Size).ToList();
            return missing.Count == 0
                ? null
                : $"{listed.Count - missing.Count} of {listed.Count} files ('{missing[0].Path}' is missing or of another size than the {missing[0].Size} bytes snapshot.json lists)";
        }
        var verified = new HashSet<string>(StringComparer.Ordinal);
        var verifiedPath = Path.Combine(state, "verified.jsonl");
        if (File.Exists(verifiedPath))
        {
            foreach (var line in File.ReadLines(verifiedPath))
            {
                try
                {
                    using var doc = JsonDocument.Parse(line);
                    if (doc.RootElement.TryGetProperty("path", out var p) && p.GetString() is { } path && filter.IsIncluded(path) && File.Exists(Path.Combine(modelDir, path)))
                    {
                        verified.Add(path);
                    }
                }
                catch (JsonException)
                {
                    // a torn line after a kill
                }
            }
        }
        var incomplete = Path.Combine(state, "incomplete");
        int partial = Directory.Exists(incomplete) ? Directory.EnumerateFiles(incomplete, "*.incomplete", SearchOption.AllDirectories).Count() : 0;
        return $"{verified.Count} of {verified.Count + partial} files ({RelativePath} is missing: hf-fetch has not finished)";
    }

    /// <summary>Reads the snapshot if the model directory has one; a present but broken file is an error.</summary>
    public static HfSnapshot? TryRead(string modelDir)
    {
        var path = Path.Combine(modelDir, RelativePath);
        if (!File.Exists(path))
        {
            return null;
        }
        try
        {
            return JsonSerializer.Deserialize(File.ReadAllBytes(path), HfSnapshotJson.Default.HfSnapshot);
        }
        catch (JsonException e)
        {
            throw new PackingException($"'{path}' is not valid hf-fetch metadata: {e.Message}", e);
        }
    }

    /// <summary>org.opencontainers.image.source / .revision from the snapshot.</summary>
    public IEnumerable<KeyValuePair<string, string>> Annotations()
    {
        if (!string.IsNullOrEmpty(RepoId))
        {
            // the annotation is public (anyone who can pull reads it): no user-info or query from the URL
            var endpoint = string.IsNullOrEmpty(Endpoint) ? "https://huggingface.co" : ModelCar.Common.Logging.Redactor.PublicUrl(Endpoint).TrimEnd('/');
            var prefix = RepoType switch
            {
                "dataset" => "/datasets",
                "space" => "/spaces",
                _ => string.Empty,
            };
            yield return new(Oci.Annotations.Source, $"{endpoint}{prefix}/{RepoId}");
        }
        if (!string.IsNullOrEmpty(Commit))
        {
            yield return new(Oci.Annotations.Revision, Commit);
        }
    }

    /// <summary>
    /// The sha256 hf-fetch verified for the files of <paramref name="tree"/> (LFS files listed with the size
    /// they still have), by full source path: oci-pack checks each against the hash it takes while packing.
    /// </summary>
    public IReadOnlyDictionary<string, string> VerifiedSha256(ModelTree tree) => Verified(tree, identityToo: false);

    /// <summary>
    /// The part of <see cref="VerifiedSha256"/> oci-pack takes without hashing: files whose identity in the scan
    /// (size, mtime, inode) is the one hf-fetch recorded when it verified them, i.e. not written since (as far as a
    /// stat can tell: the layer record's rule). A touched, replaced or copied file is hashed and checked instead.
    /// </summary>
    public IReadOnlyDictionary<string, string> TrustedSha256(ModelTree tree) => Verified(tree, identityToo: true);

    private Dictionary<string, string> Verified(ModelTree tree, bool identityToo)
    {
        var listed = (Files ?? [])
            .Where(f => f.Path is not null && f.Sha256 is { Length: 64 } s && s.All(char.IsAsciiHexDigit))
            .GroupBy(f => f.Path!, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var e in tree.Entries.Where(e => e.Kind == ModelEntryKind.File))
        {
            if (listed.TryGetValue(e.RelativePath, out var f) && f.Size == e.Size
                && (!identityToo || (f.MtimeTicks is { } ticks && e.ModifiedUtc?.Ticks == ticks && f.Inode is { } inode && inode != 0 && inode == e.Inode)))
            {
                result[e.FullPath] = f.Sha256!.ToLowerInvariant();
            }
        }
        return result;
    }
}

/// <summary>One file of the snapshot, as far as oci-pack checks it.</summary>
public sealed record HfSnapshotFile
{
    [JsonPropertyName("path")] public string? Path { get; init; }
    [JsonPropertyName("size")] public long Size { get; init; }

    /// <summary>The sha256 hf-fetch verified the content against (LFS files; null for git-stored ones).</summary>
    [JsonPropertyName("sha256")] public string? Sha256 { get; init; }

    /// <summary>The file's last-write time (UTC ticks) when hf-fetch verified it (absent in snapshots of earlier versions).</summary>
    [JsonPropertyName("mtimeTicks")] public long? MtimeTicks { get; init; }

    /// <summary>The file's inode when hf-fetch verified it (absent in snapshots of earlier versions).</summary>
    [JsonPropertyName("inode")] public ulong? Inode { get; init; }
}

[JsonSourceGenerationOptions(PropertyNameCaseInsensitive = false)]
[JsonSerializable(typeof(HfSnapshot))]
internal sealed partial class HfSnapshotJson : JsonSerializerContext;
