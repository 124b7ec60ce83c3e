using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using ModelCar.Common.IO;

namespace ModelCar.HuggingFace;

public enum HashKind
{
    /// <summary>sha256 of the content (LFS files; the tree's lfs.oid).</summary>
    Sha256,

    /// <summary>git blob sha1: sha1("blob {len}\0" + content) (small files; the tree's oid).</summary>
    GitSha1,
}

/// <summary>What a file must be: its repo path, local path, size and expected hash.</summary>
public sealed record FilePlan(string RepoPath, string LocalPath, long Size, HashKind Kind, string Hash, TreeEntry Entry)
{
    public static FilePlan From(TreeEntry entry, string root)
    {
        var local = HubPaths.LocalPath(root, entry.Path);
        if (entry.Lfs is { } lfs)
        {
            if (lfs.Oid is not { } sha || !HubClient.IsHex(sha, 64))
            {
                throw new HubException($"tree entry '{HubPaths.Printable(entry.Path)}' has no valid lfs.oid (sha256)");
            }
            return new FilePlan(entry.Path, local, lfs.Size, HashKind.Sha256, sha.ToLowerInvariant(), entry);
        }
        if (entry.Oid is not { } oid || !HubClient.IsHex(oid, 40))
        {
            throw new HubException($"tree entry '{HubPaths.Printable(entry.Path)}' has no valid oid (git sha1)");
        }
        return new FilePlan(entry.Path, local, entry.Size, HashKind.GitSha1, oid.ToLowerInvariant(), entry);
    }

    public string HashName => Kind == HashKind.Sha256 ? "sha256" : "git sha1";
}

/// <summary>
/// hf-fetch's own files under DIR/.hf-fetch/: snapshot.json (the contract oci-pack reads), verified.jsonl
/// (files verified earlier, with size, hash and mtime, so a re-run does not re-hash them),
/// incomplete/HASH.incomplete (+ .json sidecar) for partial downloads, named by the sha256 of the repo
/// path so that a 255-byte file name still fits NAME_MAX, and lock (one run per DIR at a time).
/// </summary>
public sealed class LocalState
{
    private readonly object _gate = new();
    private Dictionary<string, VerifiedRecord>? _verified;

    public LocalState(string root)
    {
        Root = Path.GetFullPath(root);
        StateDir = Path.Combine(Root, HubPaths.StateFolder);
    }

    public string Root { get; }
    public string StateDir { get; }
    /// <summary>The file name of the snapshot under <see cref="StateDir"/>.</summary>
    public const string SnapshotFileName = "snapshot.json";

    public string SnapshotPath => Path.Combine(StateDir, SnapshotFileName);
    public string VerifiedPath => Path.Combine(StateDir, "verified.jsonl");
    public string IncompleteDir => Path.Combine(StateDir, "incomplete");

    /// <summary>The advisory lock a run holds on DIR (see <see cref="FileLock"/>).</summary>
    public string LockPath => Path.Combine(StateDir, "lock");

    public const string IncompleteSuffix = ".incomplete";

    public string IncompletePath(string repoPath) =>
        Path.Combine(IncompleteDir, Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(repoPath))) + IncompleteSuffix);

    public string SidecarPath(string repoPath) => IncompletePath(repoPath) + ".json";

    /// <summary>Where versions before the hashed names kept a partial file: incomplete/PATH.incomplete.</summary>
    private string LegacyIncompletePath(string repoPath) => Path.Combine(IncompleteDir, repoPath) + IncompleteSuffix;

    /// <summary>
    /// Moves a partial download left in the old layout (incomplete/PATH.incomplete + .json) to its hashed
    /// name, so that runs of this version resume what an earlier version began.
    /// </summary>
    public void AdoptLegacyPartial(string repoPath)
    {
        var legacy = LegacyIncompletePath(repoPath);
        var current = IncompletePath(repoPath);
        if (File.Exists(current) || !File.Exists(legacy))
        {
            return;
        }
        Files.EnsureDirectory(IncompleteDir);
        File.Move(legacy, current);
        if (File.Exists(legacy + ".json"))
        {
            File.Move(legacy + ".json", current + ".json", overwrite: true);
        }
    }

    /// <summary>
    /// Removes temp files an earlier, killed run left (sidecar and snapshot temps); partial downloads stay,
    /// they are resumed. Call only while holding <see cref="LockPath"/>: then no live run owns them.
    /// </summary>
    public int RemoveStaleTempFiles()
    {
        if (!Directory.Exists(StateDir))
        {
            return 0;
        }
        int removed = 0;
        foreach (var tmp in Directory.EnumerateFiles(StateDir, "*.tmp", SearchOption.AllDirectories))
        {
            Files.TryDelete(tmp);
            removed++;
        }
        return removed;
    }

    public SnapshotMetadata? ReadSnapshot()
    {
        if (!File.Exists(SnapshotPath))
        {
            return null;
        }
        try
        {
            return JsonSerializer.Deserialize(File.ReadAllBytes(SnapshotPath), HubJson.Snapshot);
        }
        catch (JsonException e)
        {
            throw new HubException($"{SnapshotPath} is not valid JSON: {e.Message}");
        }
    }

    public void DeleteSnapshot() => Files.TryDelete(SnapshotPath);

    public void WriteSnapshot(SnapshotMetadata snapshot)
    {
        Files.EnsureDirectory(StateDir);
        Files.WriteAllBytesAtomic(SnapshotPath, JsonSerializer.SerializeToUtf8Bytes(snapshot, HubJson.Snapshot));
    }

    private Dictionary<string, VerifiedRecord> Verified()
    {
        lock (_gate)
        {
            if (_verified is not null)
            {
                return _verified;
            }
            _verified = new Dictionary<string, VerifiedRecord>(StringComparer.Ordinal);
            if (File.Exists(VerifiedPath))
            {
                foreach (var line in File.ReadLines(VerifiedPath))
                {
                    try
                    {
                        if (line.Length > 0 && JsonSerializer.Deserialize(line, HubJson.Verified) is { } r)
                        {
                            _verified[r.Path] = r;
                        }
                    }
                    catch (JsonException)
                    {
                        // a torn last line after a kill: ignore it (that file is simply re-checked)
                    }
                }
            }
            return _verified;
        }
    }

    /// <summary>The repo paths recorded as verified (a torn last line is ignored), e.g. to say how far a run got.</summary>
    public IReadOnlyCollection<string> RecordedVerifiedPaths()
    {
        lock (_gate)
        {
            return [.. Verified().Keys];
        }
    }

    /// <summary>How many partial downloads a run left (files under incomplete/ resumed by the next run).</summary>
    public int PartialDownloadCount() =>
        Directory.Exists(IncompleteDir) ? Directory.EnumerateFiles(IncompleteDir, "*" + IncompleteSuffix, SearchOption.AllDirectories).Count() : 0;

    /// <summary>True if the file was verified earlier and is unchanged since (size and mtime as recorded): no re-hash.</summary>
    public bool IsRecordedVerified(FilePlan plan)
    {
        VerifiedRecord? r;
        lock (_gate)
        {
            Verified().TryGetValue(plan.RepoPath, out r);
        }
        if (r is null || r.Size != plan.Size || !string.Equals(r.Hash, plan.Hash, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        var fi = new FileInfo(plan.LocalPath);
        return fi.Exists && fi.Length == plan.Size && fi.LastWriteTimeUtc.Ticks == r.MtimeTicks;
    }

    /// <summary>
    /// The identity (mtime ticks, inode) <paramref name="plan"/>'s file had when it was recorded verified with the plan's
    /// size and hash; null if it has no such record or the record has no inode (earlier versions).
    /// </summary>
    public (long MtimeTicks, ulong Inode)? VerifiedIdentity(FilePlan plan)
    {
        lock (_gate)
        {
            return Verified().TryGetValue(plan.RepoPath, out var r) && r.Size == plan.Size && r.Inode != 0
                && string.Equals(r.Hash, plan.Hash, StringComparison.OrdinalIgnoreCase)
                ? (r.MtimeTicks, r.Inode)
                : null;
        }
    }

    /// <summary>Records a verified file (appends one JSON line; the last line for a path wins) with its identity now.</summary>
    public void RecordVerified(FilePlan plan)
    {
        var identity = FileIdentity.Of(plan.LocalPath);
        var record = new VerifiedRecord
        {
            Path = plan.RepoPath,
            Size = plan.Size,
            Hash = plan.Hash,
            MtimeTicks = identity?.MtimeTicks ?? File.GetLastWriteTimeUtc(plan.LocalPath).Ticks,
            Inode = identity is { Size: var size } id && size == plan.Size ? id.Inode : 0,
        };
        var line = JsonSerializer.Serialize(record, HubJson.Verified) + "\n";
        lock (_gate)
        {
            Verified()[plan.RepoPath] = record;
            Files.EnsureDirectory(StateDir);
            bool created = !File.Exists(VerifiedPath);
            File.AppendAllText(VerifiedPath, line, Encoding.UTF8);
            if (created)
            {
                Files.SetMode(VerifiedPath, Files.FileMode644);
            }
        }
    }

    /// <summary>Hashes a file already on disk (one read pass) and compares with the plan.</summary>
    public static async Task<bool> HashMatchesAsync(FilePlan plan, string path, CancellationToken ct)
    {
        var fi = new FileInfo(path);
        if (!fi.Exists || fi.Length != plan.Size)
        {
            return false;
        }
        using var hash = StartHash(plan.Kind, plan.Size);
        await using var stream = Files.OpenRead(path);
        var buffer = new byte[1 << 20];
        int n;
        long total = 0;
        while ((n = await stream.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
        {
            hash.AppendData(buffer, 0, n);
            total += n;
        }
        return total == plan.Size && string.Equals(Convert.ToHexStringLower(hash.GetHashAndReset()), plan.Hash, StringComparison.Ordinal);
    }

    /// <summary>An incremental hash for <paramref name="kind"/>; git sha1 already holds the "blob {len}\0" header.</summary>
    public static IncrementalHash StartHash(HashKind kind, long size)
    {
        if (kind == HashKind.Sha256)
        {
            return IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        }
        var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
        h.AppendData(Encoding.ASCII.GetBytes($"blob {size}\0"));
        return h;
    }
}
