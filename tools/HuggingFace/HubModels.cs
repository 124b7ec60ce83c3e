using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace ModelCar.HuggingFace;

/// <summary>GET /api/{type}s/{repo}/revision/{rev}: only the resolved commit is used.</summary>
public sealed record RevisionInfo
{
    [JsonPropertyName("sha")]
    public string? Sha { get; init; }
}

/// <summary>LFS part of a tree entry: oid is the sha256 of the content.</summary>
public sealed record LfsInfo
{
    [JsonPropertyName("oid")]
    public string? Oid { get; init; }

    [JsonPropertyName("size")]
    public long Size { get; init; }
}

/// <summary>One item of GET /api/{type}s/{repo}/tree/{rev}?recursive=true.</summary>
public sealed record TreeEntry
{
    [JsonPropertyName("type")]
    public string Type { get; init; } = "";

    [JsonPropertyName("path")]
    public string Path { get; init; } = "";

    /// <summary>Git blob sha1 (for LFS files: of the pointer file).</summary>
    [JsonPropertyName("oid")]
    public string? Oid { get; init; }

    [JsonPropertyName("size")]
    public long Size { get; init; }

    [JsonPropertyName("lfs")]
    public LfsInfo? Lfs { get; init; }

    [JsonIgnore]
    public bool IsFile => Type == "file";

    /// <summary>Size of the content (the LFS size for LFS files).</summary>
    [JsonIgnore]
    public long ContentSize => Lfs?.Size ?? Size;
}

/// <summary>One file of the snapshot metadata file (contract read by oci-pack).</summary>
public sealed record SnapshotFile
{
    public string Path { get; init; } = "";
    public long Size { get; init; }

    /// <summary>sha256 of the content for LFS files; null for small (git-stored) files.</summary>
    [JsonIgnore(Condition = JsonIgnoreCondition.Never)]
    public string? Sha256 { get; init; }

    public string? GitOid { get; init; }

    /// <summary>
    /// The file's last-write time (UTC ticks) and inode when hf-fetch verified it (null for older records): a file
    /// that still has this size, mtime and inode is the verified one, so oci-pack takes <see cref="Sha256"/> without hashing.
    /// </summary>
    public long? MtimeTicks { get; init; }

    /// <inheritdoc cref="MtimeTicks"/>
    public ulong? Inode { get; init; }
}

/// <summary>DIR/.hf-fetch/snapshot.json: which repo and commit DIR holds (contract read by oci-pack).</summary>
public sealed record SnapshotMetadata
{
    public string RepoId { get; init; } = "";
    public string RepoType { get; init; } = "model";
    public string Revision { get; init; } = "";
    public string Commit { get; init; } = "";
    public string Endpoint { get; init; } = "";
    public List<SnapshotFile> Files { get; init; } = [];
}

/// <summary>A line of DIR/.hf-fetch/verified.jsonl: a file that was verified, and how it looked then.</summary>
public sealed record VerifiedRecord
{
    public string Path { get; init; } = "";
    public long Size { get; init; }

    /// <summary>The expected hash it matched: sha256 (LFS) or git blob sha1.</summary>
    public string Hash { get; init; } = "";

    /// <summary>Last-write time (UTC ticks) after the move into place: a later change invalidates the record.</summary>
    public long MtimeTicks { get; init; }

    /// <summary>Inode when recorded (0: unknown, records of earlier versions); copied into snapshot.json for oci-pack.</summary>
    public ulong Inode { get; init; }
}

/// <summary>Sidecar of a partial download (DIR/.hf-fetch/incomplete/SHA256-OF-PATH.incomplete.json).</summary>
public sealed record PartialState
{
    /// <summary>The repo path (the file names are hashes of it); absent in sidecars of earlier versions.</summary>
    public string? Path { get; init; }

    public string Commit { get; init; } = "";
    public string Hash { get; init; } = "";
    public long Size { get; init; }
    public long ChunkSize { get; init; }

    /// <summary>Bytes already on disk at the start of each chunk (chunk i starts at i × ChunkSize).</summary>
    public long[] Written { get; init; } = [];
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(RevisionInfo))]
[JsonSerializable(typeof(List<TreeEntry>))]
[JsonSerializable(typeof(SnapshotMetadata))]
[JsonSerializable(typeof(VerifiedRecord))]
[JsonSerializable(typeof(PartialState))]
internal sealed partial class HubJsonContext : JsonSerializerContext;

/// <summary>Source-generated JSON (Native-AOT safe) for the Hub API and the files hf-fetch keeps.</summary>
public static class HubJson
{
    private static readonly JsonSerializerOptions Compact = new(HubJsonContext.Default.Options)
    {
        Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
        TypeInfoResolver = HubJsonContext.Default,
    };

    private static readonly JsonSerializerOptions Indented = new(Compact) { WriteIndented = true };

    public static JsonTypeInfo<RevisionInfo> Revision => Get<RevisionInfo>(Compact);
    public static JsonTypeInfo<List<TreeEntry>> Tree => Get<List<TreeEntry>>(Compact);
    public static JsonTypeInfo<SnapshotMetadata> Snapshot => Get<SnapshotMetadata>(Indented);
    public static JsonTypeInfo<VerifiedRecord> Verified => Get<VerifiedRecord>(Compact);
    public static JsonTypeInfo<PartialState> Partial => Get<PartialState>(Compact);

    private static JsonTypeInfo<T> Get<T>(JsonSerializerOptions options) => (JsonTypeInfo<T>)options.GetTypeInfo(typeof(T));
}
