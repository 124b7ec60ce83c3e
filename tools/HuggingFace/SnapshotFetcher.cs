using Microsoft.Extensions.Logging;
using ModelCar.Common;
using ModelCar.Common.IO;

namespace ModelCar.HuggingFace;

public sealed record FetchRequest
{
    public required string RepoId { get; init; }
    public RepoType RepoType { get; init; } = RepoType.Model;
    public string Revision { get; init; } = "main";
    public required string Dest { get; init; }
    public IReadOnlyList<string> Include { get; init; } = [];
    public IReadOnlyList<string> Exclude { get; init; } = [];
    public int Jobs { get; init; } = 4;

    /// <summary>Files of at least twice this size are fetched as concurrent Range chunks of this size.</summary>
    public long ChunkSize { get; init; } = DefaultChunkSize;

    public const long DefaultChunkSize = 32L << 20;
}

/// <param name="Commit">The commit DIR now holds.</param>
/// <param name="Files">Files in the snapshot (after include/exclude).</param>
/// <param name="Bytes">Their total size.</param>
/// <param name="Downloaded">Bytes received from the network in this run.</param>
/// <param name="Skipped">Files already complete and verified, not downloaded.</param>
public sealed record FetchSummary(string Commit, int Files, long Bytes, long Downloaded, int Skipped);

/// <summary>
/// snapshot_download done the careful way: revision → commit once, tree at that commit, filter, then each file
/// at that commit, verified, resumable across runs; DIR/.hf-fetch/snapshot.json written at the end.
/// </summary>
public sealed class SnapshotFetcher(ILogger logger)
{
    /// <summary>Free bytes on the file system of a directory (tests replace it); default statvfs.</summary>
    public Func<string, long>? AvailableSpace { get; init; }

    public async Task<FetchSummary> FetchAsync(HubClient client, FetchRequest request, CancellationToken ct)
    {
        var store = new LocalState(request.Dest);
        Files.EnsureDirectory(store.Root);
        var filter = new GlobFilter(request.Include, request.Exclude);
        var selection = await HubSelection.ResolveAsync(client, request.RepoType, request.RepoId, request.Revision, filter.Matches, store.Root, logger, ct).ConfigureAwait(false);
        if (selection.EmptyReason(request.RepoId) is { } empty)
        {
            throw new HubException(empty, reason: selection.PatternsSelectedNone ? HubReason.NoFileMatchesFilter : null);
        }
        var (commit, plans) = (selection.Commit, selection.Plans);

        // DIR no longer holds a complete snapshot until this run ends: oci-pack and --offline must not trust an old one
        store.DeleteSnapshot();
        var pending = plans.Where(p => !store.IsRecordedVerified(p)).ToList();
        int skipped = plans.Count - pending.Count;
        long toFetch = pending.Sum(p => p.Size);
        logger.LogInformation("{Files} files, {Bytes}: {Skipped} already verified here, {Pending} to check or fetch ({PendingBytes})",
            plans.Count, SizeParser.Format(plans.Sum(p => p.Size)), skipped, pending.Count, SizeParser.Format(toFetch));
        if (pending.Count > 0)
        {
            long needed = DiskSpace.StillNeeded(store, pending);
            long available = (AvailableSpace ?? DiskSpace.Available)(store.Root);
            logger.LogDebug("free space under {Dest}: {Needed} needed, {Available} available", store.Root, SizeParser.Format(needed), SizeParser.Format(available));
            DiskSpace.Check(store.Root, needed, available);
        }

        long downloaded = 0;
        int reused = 0;
        if (pending.Count > 0)
        {
            using var progress = new ProgressReporter(logger, "hf-fetch", toFetch);
            using var slots = new SemaphoreSlim(request.Jobs, request.Jobs);
            var options = new ParallelOptions { MaxDegreeOfParallelism = request.Jobs, CancellationToken = ct };
            // biggest first: the long transfers start early and small files fill the gaps
            await Parallel.ForEachAsync(pending.OrderByDescending(p => p.Size), options, async (plan, token) =>
            {
                try
                {
                    if (File.Exists(plan.LocalPath) && new FileInfo(plan.LocalPath).Length == plan.Size
                        && await LocalState.HashMatchesAsync(plan, plan.LocalPath, token).ConfigureAwait(false))
                    {
                        logger.LogDebug("{Path}: already here and verified", plan.RepoPath);
                        store.RecordVerified(plan);
                        progress.Add(plan.Size);
                        Interlocked.Increment(ref reused);
                        return;
                    }
                    var url = HubPaths.Resolve(client.Endpoint, request.RepoType, request.RepoId, commit, plan.RepoPath);
                    var download = new FileDownload(client, store, plan, commit, url, request.ChunkSize, slots, progress, logger);
                    try
                    {
                        await download.RunAsync(token).ConfigureAwait(false);
                    }
                    finally
                    {
                        Interlocked.Add(ref downloaded, download.Received);
                    }
                    logger.LogDebug("{Path}: {Size} verified ({Hash})", plan.RepoPath, SizeParser.Format(plan.Size), plan.HashName);
                }
                catch (IOException e) when (IsDiskFull(e))
                {
                    throw new HubException($"disk full: cannot write '{plan.RepoPath}' under {store.Root} ({e.Message})", e);
                }
            }).ConfigureAwait(false);
        }
        TryRemoveEmptyDirs(store.IncompleteDir);
        var snapshot = new SnapshotMetadata
        {
            RepoId = request.RepoId,
            RepoType = HubPaths.TypeName(request.RepoType),
            Revision = request.Revision,
            Commit = commit,
            Endpoint = ModelCar.Common.Logging.Redactor.PublicUrl(client.Endpoint), // never a password or token from the URL
            Files = plans.Select(p => new SnapshotFile
            {
                Path = p.RepoPath,
                Size = p.Size,
                Sha256 = p.Kind == HashKind.Sha256 ? p.Hash : null,
                GitOid = p.Entry.Oid?.ToLowerInvariant(),
                // the identity the file had when verified (not now): oci-pack trusts Sha256 only while the file still has it
                MtimeTicks = store.VerifiedIdentity(p)?.MtimeTicks,
                Inode = store.VerifiedIdentity(p)?.Inode,
            }).ToList(),
        };
        store.WriteSnapshot(snapshot);
        return new FetchSummary(commit, plans.Count, plans.Sum(p => p.Size), downloaded, skipped + reused);
    }

    /// <summary>
    /// Offline: no network at all. Succeeds only if DIR holds a snapshot of this repo (and revision) whose files
    /// (after include/exclude) are all present and verify (recorded size+hash+mtime, else re-hashed).
    /// </summary>
    public async Task<FetchSummary> VerifyOfflineAsync(FetchRequest request, bool revisionGiven, CancellationToken ct)
    {
        var store = new LocalState(request.Dest);
        var snapshot = store.ReadSnapshot()
            ?? throw new HubException($"offline: {store.Root} holds no snapshot ({store.SnapshotPath} is missing); run once with network");
        if (snapshot.RepoId != request.RepoId || snapshot.RepoType != HubPaths.TypeName(request.RepoType))
        {
            throw new HubException($"offline: {store.Root} holds {snapshot.RepoType} {snapshot.RepoId}, not {HubPaths.TypeName(request.RepoType)} {request.RepoId}");
        }
        if (revisionGiven && request.Revision != snapshot.Revision
            && !(request.Revision.Length >= 7 && snapshot.Commit.StartsWith(request.Revision.ToLowerInvariant(), StringComparison.Ordinal)))
        {
            throw new HubException($"offline: {store.Root} holds revision '{snapshot.Revision}' (commit {snapshot.Commit}), not '{request.Revision}'");
        }
        var filter = new GlobFilter(request.Include, request.Exclude);
        var files = snapshot.Files.Where(f => filter.Matches(f.Path)).ToList();
        if (files.Count == 0)
        {
            throw new HubException($"offline: no file of the snapshot in {store.Root} matches the include/exclude patterns", reason: HubReason.NoFileMatchesFilter);
        }
        int rehashed = 0;
        foreach (var f in files)
        {
            var entry = new TreeEntry
            {
                Type = "file",
                Path = f.Path,
                Oid = f.GitOid,
                Size = f.Size,
                Lfs = f.Sha256 is null ? null : new LfsInfo { Oid = f.Sha256, Size = f.Size },
            };
            var plan = FilePlan.From(entry, store.Root);
            if (store.IsRecordedVerified(plan))
            {
                continue;
            }
            if (!await LocalState.HashMatchesAsync(plan, plan.LocalPath, ct).ConfigureAwait(false))
            {
                throw new HubException($"offline: '{f.Path}' in {store.Root} is missing or does not match its {plan.HashName} {plan.Hash}");
            }
            store.RecordVerified(plan);
            rehashed++;
        }
        logger.LogInformation("offline: {Files} files of {Repo}@{Commit} verified ({Rehashed} re-hashed)", files.Count, snapshot.RepoId, snapshot.Commit, rehashed);
        return new FetchSummary(snapshot.Commit, files.Count, files.Sum(f => f.Size), 0, files.Count);
    }

    public static bool IsDiskFull(IOException e) =>
        e.HResult is 28 or 0x70 or unchecked((int)0x80070070) || e.Message.Contains("No space left", StringComparison.OrdinalIgnoreCase)
        || e.Message.Contains("disk was full", StringComparison.OrdinalIgnoreCase);

    private static void TryRemoveEmptyDirs(string dir)
    {
        if (!Directory.Exists(dir))
        {
            return;
        }
        foreach (var sub in Directory.GetDirectories(dir))
        {
            TryRemoveEmptyDirs(sub);
        }
        try
        {
            if (!Directory.EnumerateFileSystemEntries(dir).Any())
            {
                Directory.Delete(dir);
            }
        }
        catch (IOException)
        {
        }
    }
}
