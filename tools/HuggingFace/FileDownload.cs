using System.Net;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using ModelCar.Common;
using ModelCar.Common.IO;

namespace ModelCar.HuggingFace;

/// <summary>
/// One file into DIR, the transfer scheduler: Range requests through the file's <see cref="HubFile"/>
/// (concurrent chunks for large files, each holding one of the run's slots) written at their offsets into the
/// <see cref="PartialFile"/>, an <see cref="InOrderHasher"/> that trails the contiguous prefix as it grows, and the
/// rename to the final path only after size and hash verify. Restarts (Range ignored, 416, data of an earlier run
/// that does not verify) and the one refetch of a corrupted body are decided here; the byte copying is in
/// FileDownload.Chunks.cs.
/// </summary>
internal sealed partial class FileDownload(HubClient client, LocalState store, FilePlan plan, string commit, Uri resolveUrl,
    long chunkSize, SemaphoreSlim slots, ProgressReporter progress, ILogger logger)
{
    /// <summary>How often the resume sidecar is rewritten: a kill loses at most this much transfer time.</summary>
    private static readonly TimeSpan SidecarInterval = TimeSpan.FromMilliseconds(250);
    private readonly HubFile _file = new(client, resolveUrl, commit, plan, logger);
    private readonly PartialFile _partial = new(store, plan, commit, logger);
    private long _received;

    /// <summary>Bytes received from the network for this file.</summary>
    public long Received => Interlocked.Read(ref _received);

    public async Task RunAsync(CancellationToken ct)
    {
        var state = _partial.LoadOrCreate(ChunkSizeFor(single: false), out bool resumedFromDisk);
        if (resumedFromDisk)
        {
            logger.LogInformation("{Path}: resuming, {Done} of {Size} already here", plan.RepoPath, SizeParser.Format(state.Total), SizeParser.Format(plan.Size));
            progress.Add(state.Total);
        }
        string? firstMismatch = null;
        for (int attempt = 0; ; attempt++)
        {
            using var saver = new Timer(_ => _partial.TrySave(state), null, SidecarInterval, SidecarInterval);
            try
            {
                await TransferAndVerifyAsync(state, ct).ConfigureAwait(false);
                return;
            }
            catch (RestartException e) when (attempt < 3)
            {
                logger.LogWarning("{Path}: {Why}; starting the file over", plan.RepoPath, e.Message);
                state = _partial.Reset(ChunkSizeFor(single: e.RangeIgnored));
            }
            catch (HashMismatchException e) when (!resumedFromDisk && firstMismatch is null)
            {
                // a body corrupted on the way (a bad CDN node, a proxy): once more from a new signed URL, over a new connection
                logger.LogWarning("{Path}: {HashName} mismatch (expected {Expected}, got {Got}); fetching the file once more from a new URL over a new connection",
                    plan.RepoPath, plan.HashName, plan.Hash, e.Actual);
                firstMismatch = e.Actual;
                _file.UseNewConnection();
                state = _partial.Reset(ChunkSizeFor(single: false));
            }
            catch (HashMismatchException e) when (firstMismatch is not null)
            {
                saver.Dispose();
                _partial.Delete();
                throw new HashMismatchException(
                    $"{plan.RepoPath}: {plan.HashName} mismatch twice (fetched again from a new URL over a new connection): expected {plan.Hash}, got {e.Actual}"
                    + (e.Actual == firstMismatch ? "" : $" (first try: {firstMismatch})") + " (file not kept)", e.Actual);
            }
            catch (VerificationException e) when (resumedFromDisk && attempt < 3)
            {
                logger.LogWarning("{Path}: {Why} (partial data from an earlier run); starting the file over", plan.RepoPath, e.Message);
                resumedFromDisk = false;
                state = _partial.Reset(ChunkSizeFor(single: false));
            }
            catch (VerificationException)
            {
                saver.Dispose();
                _partial.Delete();
                throw;
            }
            catch (RestartException e)
            {
                saver.Dispose();
                _partial.Delete();
                throw new HubException($"{plan.RepoPath}: {e.Message}");
            }
            catch
            {
                saver.Dispose();
                _partial.TrySave(state); // keep the partial file for the next run
                throw;
            }
        }
    }

    private long ChunkSizeFor(bool single) => single || plan.Size < 2 * chunkSize ? Math.Max(plan.Size, 1) : chunkSize;

    private async Task TransferAndVerifyAsync(ChunkState state, CancellationToken ct)
    {
        using var handle = File.OpenHandle(_partial.Incomplete, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var signal = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
        using var cursor = new InOrderHasher(LocalState.StartHash(plan.Kind, plan.Size));
        string hash;
        if (state.Size == 0)
        {
            await WithSlotAsync(() => _file.CheckEmptyAsync(ct), ct).ConfigureAwait(false);
            hash = await HashAsync(handle, state, cursor, signal.Reader, ct).ConfigureAwait(false);
        }
        else if (state.AllComplete)
        {
            hash = await HashAsync(handle, state, cursor, signal.Reader, ct).ConfigureAwait(false);
        }
        else
        {
            int first = Enumerable.Range(0, state.Count).First(i => !state.IsComplete(i));
            bool ranged = state.Count > 1 || state.Total > 0;
            HubResponse response;
            await slots.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                response = await OpenAsync(state, first, ranged, ct).ConfigureAwait(false);
            }
            catch
            {
                slots.Release();
                throw;
            }
            if (response.Message.StatusCode == HttpStatusCode.OK && state.Count > 1)
            {
                // Range ignored on a fresh file: take the whole body as one stream
                response.Dispose();
                slots.Release();
                throw new RestartException("server ignored Range (200)", rangeIgnored: true);
            }
            var hashing = HashAsync(handle, state, cursor, signal.Reader, cts.Token);
            var chunks = new List<Task>
            {
                Guard(ReleasingAsync(RunChunkAsync(handle, state, cursor, first, response, signal.Writer, cts.Token)), cts),
            };
            for (int i = first + 1; i < state.Count; i++)
            {
                if (!state.IsComplete(i))
                {
                    int index = i;
                    chunks.Add(Guard(WithSlotAsync(() => RunChunkAsync(handle, state, cursor, index, null, signal.Writer, cts.Token), cts.Token), cts));
                }
            }
            try
            {
                await Task.WhenAll(chunks).ConfigureAwait(false);
            }
            catch
            {
                await cts.CancelAsync().ConfigureAwait(false);
                try
                {
                    await hashing.ConfigureAwait(false);
                }
                catch (Exception)
                {
                    // the chunk failure is what matters
                }
                throw FirstFailure(chunks);
            }
            hash = await hashing.ConfigureAwait(false);
        }
        if (!string.Equals(hash, plan.Hash, StringComparison.Ordinal))
        {
            throw new HashMismatchException($"{plan.RepoPath}: {plan.HashName} mismatch: expected {plan.Hash} (the tree listing), got {hash} (file not kept)", hash);
        }
        handle.Dispose();
        _partial.TrySave(state);
        Files.EnsureDirectory(Path.GetDirectoryName(plan.LocalPath)!);
        HubPaths.LocalPath(store.Root, plan.RepoPath); // checked when planned; again in case a symlink appeared since
        if (Directory.Exists(plan.LocalPath))
        {
            throw new HubException($"{plan.RepoPath}: cannot write {plan.LocalPath}: a directory is in the way");
        }
        _partial.Complete(plan.LocalPath);
        Files.SetMode(plan.LocalPath, Files.FileMode644);
        store.RecordVerified(plan);
    }

    /// <summary>Opens chunk <paramref name="index"/> from its first missing byte.</summary>
    private Task<HubResponse> OpenAsync(ChunkState state, int index, bool ranged, CancellationToken ct) =>
        _file.OpenAsync(state.Start(index) + state.Done(index), state.Start(index) + state.Length(index) - 1, ranged, acceptIgnoredRange: false, ct);

    private static Exception FirstFailure(List<Task> tasks)
    {
        var errors = tasks.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException!).ToList();
        return errors.FirstOrDefault(e => e is not OperationCanceledException) ?? errors.FirstOrDefault() ?? new OperationCanceledException();
    }

    private static async Task Guard(Task task, CancellationTokenSource cts)
    {
        try
        {
            await task.ConfigureAwait(false);
        }
        catch
        {
            await cts.CancelAsync().ConfigureAwait(false);
            throw;
        }
    }

    private async Task ReleasingAsync(Task work)
    {
        try
        {
            await work.ConfigureAwait(false);
        }
        finally
        {
            slots.Release();
        }
    }

    private async Task WithSlotAsync(Func<Task> work, CancellationToken ct)
    {
        await slots.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await work().ConfigureAwait(false);
        }
        finally
        {
            slots.Release();
        }
    }
}
