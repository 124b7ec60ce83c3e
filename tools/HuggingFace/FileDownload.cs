using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Win32.SafeHandles;
using ModelCar.Common.Cli;
using ModelCar.Common.Http;
using ModelCar.Common.IO;
using ModelCar.Common.Logging;

namespace ModelCar.HuggingFace;

/// <summary>The downloaded bytes do not match the tree listing (hash or size).</summary>
public class VerificationException(string message) : ToolException(message);

/// <summary>The right number of bytes arrived, but their hash is not the listing's.</summary>
public sealed class HashMismatchException(string message, string actual) : VerificationException(message)
{
    public string Actual { get; } = actual;
}

/// <summary>The partial file cannot be continued (server ignored Range on a resume, or answered 416): start over.</summary>
internal sealed class RestartException(string message, bool rangeIgnored) : Exception(message)
{
    /// <summary>The server does not do Range: the next attempt is one plain stream.</summary>
    public bool RangeIgnored { get; } = rangeIgnored;
}

/// <summary>Byte counts of a partial file, one per chunk, updated as bytes reach the file.</summary>
internal sealed class ChunkState
{
    public ChunkState(long size, long chunkSize, long[]? written = null)
    {
        Size = size;
        ChunkSize = Math.Max(1, chunkSize);
        int count = size == 0 ? 0 : (int)((size + ChunkSize - 1) / ChunkSize);
        Written = written is { } w && w.Length == count ? w : new long[count];
    }

    public long Size { get; }
    public long ChunkSize { get; }
    public long[] Written { get; }
    public int Count => Written.Length;

    public long Start(int i) => i * ChunkSize;

    public long Length(int i) => Math.Min(ChunkSize, Size - Start(i));

    public long Done(int i) => Volatile.Read(ref Written[i]);

    public bool IsComplete(int i) => Done(i) >= Length(i);

    public long Total => Enumerable.Range(0, Count).Sum(Done);

    public bool AllComplete => Enumerable.Range(0, Count).All(IsComplete);

    /// <summary>End of the contiguous prefix of bytes on disk (what the in-order hash may read).</summary>
    public long Frontier()
    {
        long f = 0;
        for (int i = 0; i < Count; i++)
        {
            long d = Done(i);
            f += d;
            if (d < Length(i))
            {
                break;
            }
        }
        return f;
    }
}

/// <summary>
/// One file: Range requests (concurrent chunks for large files) written at their offsets into a preallocated
/// DIR/.hf-fetch/incomplete/HASH.incomplete, a sequential hash that trails the contiguous prefix as it grows
/// (so hashing runs during the transfer, reading back just-written pages), a sidecar recording per-chunk byte
/// counts for resume across runs, and a rename to the final path only after size and hash verify.
/// </summary>
internal sealed class FileDownload(HubClient client, LocalState store, FilePlan plan, string commit, Uri resolveUrl,
    long chunkSize, SemaphoreSlim slots, ProgressReporter progress, ILogger logger)
{
    private const int BufferSize = 1 << 20;

    /// <summary>How often the resume sidecar is rewritten: a kill loses at most this much transfer time.</summary>
    private static readonly TimeSpan SidecarInterval = TimeSpan.FromMilliseconds(250);
    private readonly object _sidecarGate = new();
    private readonly string _incomplete = store.IncompletePath(plan.RepoPath);
    private readonly string _sidecar = store.SidecarPath(plan.RepoPath);
    private readonly Uri _resolveUrl = new(resolveUrl.OriginalString);
    private Uri _url = resolveUrl;
    private long _received;

    /// <summary>Bytes received from the network for this file.</summary>
    public long Received => Interlocked.Read(ref _received);

    public async Task RunAsync(CancellationToken ct)
    {
        var state = LoadOrCreate(out bool resumedFromDisk);
        string? firstMismatch = null;
        for (int attempt = 0; ; attempt++)
        {
            using var saver = new Timer(_ => TrySaveSidecar(state), null, SidecarInterval, SidecarInterval);
            try
            {
                await TransferAndVerifyAsync(state, ct).ConfigureAwait(false);
                return;
            }
            catch (RestartException e) when (attempt < 3)
            {
                logger.LogWarning("{Path}: {Why}; starting the file over", plan.RepoPath, e.Message);
                state = Reset(single: e.RangeIgnored);
            }
            catch (HashMismatchException e) when (!resumedFromDisk && firstMismatch is null)
            {
                // a body corrupted on the way (a bad CDN node, a proxy): once more from a new signed URL
                logger.LogWarning("{Path}: {HashName} mismatch (expected {Expected}, got {Got}); fetching the file once more from a new URL",
                    plan.RepoPath, plan.HashName, plan.Hash, e.Actual);
                firstMismatch = e.Actual;
                _url = _resolveUrl;
                state = Reset(single: false);
            }
            catch (HashMismatchException e) when (firstMismatch is not null)
            {
                saver.Dispose();
                DeletePartial();
                throw new HashMismatchException(
                    $"{plan.RepoPath}: {plan.HashName} mismatch twice (fetched again from a new URL): expected {plan.Hash}, got {e.Actual}"
                    + (e.Actual == firstMismatch ? "" : $" (first try: {firstMismatch})") + " (file not kept)", e.Actual);
            }
            catch (VerificationException e) when (resumedFromDisk && attempt < 3)
            {
                logger.LogWarning("{Path}: {Why} (partial data from an earlier run); starting the file over", plan.RepoPath, e.Message);
                resumedFromDisk = false;
                state = Reset(single: false);
            }
            catch (VerificationException)
            {
                saver.Dispose();
                DeletePartial();
                throw;
            }
            catch (RestartException e)
            {
                saver.Dispose();
                DeletePartial();
                throw new ToolException($"{plan.RepoPath}: {e.Message}");
            }
            catch
            {
                saver.Dispose();
                TrySaveSidecar(state); // keep the partial file for the next run
                throw;
            }
        }
    }

    private long ChunkSizeFor(bool single) => single || plan.Size < 2 * chunkSize ? Math.Max(plan.Size, 1) : chunkSize;

    private ChunkState LoadOrCreate(out bool resumed)
    {
        resumed = false;
        try
        {
            store.AdoptLegacyPartial(plan.RepoPath);
            if (File.Exists(_sidecar) && File.Exists(_incomplete) && new FileInfo(_incomplete).Length == plan.Size)
            {
                var saved = JsonSerializer.Deserialize(File.ReadAllBytes(_sidecar), HubJson.Partial);
                if (saved is not null && saved.Commit == commit && saved.Hash == plan.Hash && saved.Size == plan.Size && saved.ChunkSize > 0)
                {
                    var state = new ChunkState(plan.Size, saved.ChunkSize, saved.Written);
                    if (state.Written == saved.Written && Enumerable.Range(0, state.Count).All(i => state.Done(i) >= 0 && state.Done(i) <= state.Length(i)))
                    {
                        resumed = state.Total > 0;
                        if (resumed)
                        {
                            logger.LogInformation("{Path}: resuming, {Done} of {Size} already here", plan.RepoPath, SizeParser.Format(state.Total), SizeParser.Format(plan.Size));
                            progress.Add(state.Total);
                        }
                        return state;
                    }
                }
            }
        }
        catch (Exception e) when (e is JsonException or IOException)
        {
            // unreadable sidecar (or an old partial that cannot be moved): start over
        }
        return Reset(single: false);
    }

    /// <summary>A fresh, preallocated .incomplete file (fallocate: a full disk fails here, not half way).</summary>
    private ChunkState Reset(bool single)
    {
        var state = new ChunkState(plan.Size, ChunkSizeFor(single));
        Files.EnsureDirectory(Path.GetDirectoryName(_incomplete)!);
        Files.TryDelete(_sidecar);
        using (var created = File.OpenHandle(_incomplete, FileMode.Create, FileAccess.ReadWrite, FileShare.Read, FileOptions.None, plan.Size))
        {
            RandomAccess.SetLength(created, plan.Size); // preallocation keeps length 0; resume checks the length
        }
        Files.SetMode(_incomplete, Files.FileMode644);
        SaveSidecar(state);
        return state;
    }

    private void DeletePartial()
    {
        lock (_sidecarGate)
        {
            Files.TryDelete(_incomplete);
            Files.TryDelete(_sidecar);
        }
    }

    private void SaveSidecar(ChunkState state)
    {
        var partial = new PartialState
        {
            Path = plan.RepoPath,
            Commit = commit,
            Hash = plan.Hash,
            Size = plan.Size,
            ChunkSize = state.ChunkSize,
            Written = Enumerable.Range(0, state.Count).Select(state.Done).ToArray(),
        };
        lock (_sidecarGate)
        {
            if (File.Exists(_incomplete))
            {
                // temp + rename, no fsync: it must survive a killed process, not a power cut (the hash catches that)
                var tmp = _sidecar + ".tmp";
                File.WriteAllBytes(tmp, JsonSerializer.SerializeToUtf8Bytes(partial, HubJson.Partial));
                File.Move(tmp, _sidecar, overwrite: true);
            }
        }
    }

    private void TrySaveSidecar(ChunkState state)
    {
        try
        {
            SaveSidecar(state);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger.LogDebug("{Path}: could not save resume state: {Why}", plan.RepoPath, e.Message);
        }
    }

    private async Task TransferAndVerifyAsync(ChunkState state, CancellationToken ct)
    {
        using var handle = File.OpenHandle(_incomplete, FileMode.Open, FileAccess.ReadWrite, FileShare.Read);
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var signal = Channel.CreateBounded<bool>(new BoundedChannelOptions(1) { FullMode = BoundedChannelFullMode.DropWrite });
        using var cursor = new HashCursor(plan.Kind, plan.Size);
        string hash;
        if (state.Size == 0)
        {
            await DownloadEmptyAsync(ct).ConfigureAwait(false);
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
        TrySaveSidecar(state);
        Files.EnsureDirectory(Path.GetDirectoryName(plan.LocalPath)!);
        HubPaths.LocalPath(store.Root, plan.RepoPath); // checked when planned; again in case a symlink appeared since
        if (Directory.Exists(plan.LocalPath))
        {
            throw new ToolException($"{plan.RepoPath}: cannot write {plan.LocalPath}: a directory is in the way");
        }
        lock (_sidecarGate)
        {
            File.Move(_incomplete, plan.LocalPath, overwrite: true);
            Files.TryDelete(_sidecar);
        }
        Files.SetMode(plan.LocalPath, Files.FileMode644);
        store.RecordVerified(plan);
    }

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

    /// <summary>A zero-byte file: one plain GET whose body must be empty.</summary>
    private async Task DownloadEmptyAsync(CancellationToken ct)
    {
        await slots.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            using var response = await client.SendAsync(HttpMethod.Get, _url, null, ct).ConfigureAwait(false);
            await client.EnsureSuccessAsync(response.Message, HttpMethod.Get, response.FinalUrl, ct, plan.RepoPath).ConfigureAwait(false);
            CheckHubHeaders(response.First);
            await using var body = await response.Message.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
            var one = new byte[1];
            if (await body.ReadAsync(one, ct).ConfigureAwait(false) > 0)
            {
                throw new VerificationException($"{plan.RepoPath}: size mismatch: the server sends bytes for a file the tree listing says is empty (file not kept)");
            }
        }
        finally
        {
            slots.Release();
        }
    }

    /// <summary>Opens chunk <paramref name="index"/> from its first missing byte; re-resolves once if a cached CDN URL went stale.</summary>
    private async Task<HubResponse> OpenAsync(ChunkState state, int index, bool ranged, CancellationToken ct)
    {
        long from = state.Start(index) + state.Done(index);
        long to = state.Start(index) + state.Length(index) - 1;
        var range = ranged ? new RangeHeaderValue(from, to) : null;
        var response = await client.SendAsync(HttpMethod.Get, _url, range, ct).ConfigureAwait(false);
        if ((int)response.Message.StatusCode is 401 or 403 or 404 or 410 && _url != _resolveUrl)
        {
            logger.LogDebug("{Path}: {Status} from the redirect target; resolving again", plan.RepoPath, (int)response.Message.StatusCode);
            response.Dispose();
            _url = _resolveUrl;
            response = await client.SendAsync(HttpMethod.Get, _url, range, ct).ConfigureAwait(false);
        }
        try
        {
            return await CheckOpenedAsync(response, from, to, ct).ConfigureAwait(false);
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    private async Task<HubResponse> CheckOpenedAsync(HubResponse response, long from, long to, CancellationToken ct)
    {
        if (response.Message.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            string? contentRange = response.Message.Content.Headers.ContentRange?.ToString();
            response.Dispose();
            throw new RestartException($"416 Range Not Satisfiable for bytes {from}-{to}{(contentRange is null ? "" : $" (server: {contentRange})")}", rangeIgnored: false);
        }
        await client.EnsureSuccessAsync(response.Message, HttpMethod.Get, response.FinalUrl, ct, plan.RepoPath).ConfigureAwait(false);
        _url = response.FinalUrl;
        CheckHubHeaders(response.First);
        var message = response.Message;
        if (message.StatusCode == HttpStatusCode.PartialContent)
        {
            var cr = message.Content.Headers.ContentRange;
            if (cr is null || cr.From != from)
            {
                response.Dispose();
                throw new ToolException($"{plan.RepoPath}: server answered bytes {cr?.From}-{cr?.To} to a request for {from}-{to}");
            }
            if (cr.Length is { } total && total != plan.Size)
            {
                response.Dispose();
                throw new VerificationException($"{plan.RepoPath}: size mismatch: the server has {total} bytes, the tree listing says {plan.Size} (file not kept)");
            }
        }
        else if (message.StatusCode == HttpStatusCode.OK)
        {
            if (from > 0)
            {
                response.Dispose();
                throw new RestartException($"server ignored Range (200) when resuming at byte {from}", rangeIgnored: true);
            }
            if (message.Content.Headers.ContentLength is { } length && length != plan.Size)
            {
                response.Dispose();
                throw new VerificationException($"{plan.RepoPath}: size mismatch: the server sends {length} bytes, the tree listing says {plan.Size} (file not kept)");
            }
        }
        else
        {
            response.Dispose();
            throw new ToolException($"{plan.RepoPath}: unexpected {(int)message.StatusCode} {message.ReasonPhrase} from {Redactor.Url(response.FinalUrl)}");
        }
        return response;
    }

    private void CheckHubHeaders(ResolveHeaders first)
    {
        if (first.Commit is { } c && !string.Equals(c, commit, StringComparison.OrdinalIgnoreCase))
        {
            throw new ToolException($"{plan.RepoPath}: the Hub answered for commit {c}, expected {commit}");
        }
        if (first.Etag is { } etag && (HubClient.IsHex(etag, 40) || HubClient.IsHex(etag, 64)) && etag.Length == plan.Hash.Length
            && !string.Equals(etag, plan.Hash, StringComparison.OrdinalIgnoreCase))
        {
            // the content hash decides; an etag that is not the content hash is a server quirk worth a warning, not a failure
            logger.LogWarning("{Path}: the Hub's etag {Etag} differs from the tree listing's {HashName} {Hash}", plan.RepoPath, etag, plan.HashName, plan.Hash);
        }
        if (first.LinkedSize is { } size && size != plan.Size)
        {
            throw new VerificationException($"{plan.RepoPath}: size mismatch: X-Linked-Size {size}, the tree listing says {plan.Size}");
        }
    }

    /// <summary>Streams one chunk to its offsets; a cut connection continues with Range from the last byte written.</summary>
    private async Task RunChunkAsync(SafeFileHandle handle, ChunkState state, HashCursor cursor, int index, HubResponse? initial, ChannelWriter<bool> signal, CancellationToken ct)
    {
        int failures = 0;
        var settings = client.Settings;
        byte[] buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            while (!state.IsComplete(index))
            {
                var response = initial ?? await OpenAsync(state, index, ranged: true, ct).ConfigureAwait(false);
                initial = null;
                long before = state.Done(index);
                try
                {
                    await using var raw = await response.Message.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
                    await using var body = new StallTimeoutStream(raw, settings.StallTimeout, HubClient.NoData(response.FinalUrl, settings.StallTimeout));
                    await CopyChunkAsync(body, handle, state, cursor, index, buffer, signal, ct).ConfigureAwait(false);
                }
                catch (Exception e) when (HttpRetry.IsTransient(e, ct) && !ct.IsCancellationRequested && failures < settings.MaxRetries)
                {
                    failures = state.Done(index) > before ? 0 : failures + 1;
                    var delay = HttpRetry.Backoff(failures, settings.RetryBaseDelay); // the shared backoff (no response here: a body broke)
                    logger.LogWarning("{Path}: transfer broke at byte {At} ({Why}); continuing with Range in {Delay:0.0} s",
                        plan.RepoPath, state.Start(index) + state.Done(index), ToolApp.Describe(e), delay.TotalSeconds);
                    await Task.Delay(delay, ct).ConfigureAwait(false);
                }
                finally
                {
                    response.Dispose();
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task CopyChunkAsync(Stream body, SafeFileHandle handle, ChunkState state, HashCursor cursor, int index, byte[] buffer, ChannelWriter<bool> signal, CancellationToken ct)
    {
        long start = state.Start(index);
        long length = state.Length(index);
        while (true)
        {
            long remaining = length - state.Done(index);
            int filled = 0;
            bool eof = false;
            Exception? broken = null;
            // fill up to half the buffer before writing: fewer, larger writes
            try
            {
                while (filled < BufferSize / 2)
                {
                    int n = await body.ReadAsync(buffer.AsMemory(filled, BufferSize - filled), ct).ConfigureAwait(false);
                    if (n == 0)
                    {
                        eof = true;
                        break;
                    }
                    filled += n;
                }
            }
            catch (Exception e) when (e is IOException or HttpRequestException or TimeoutException or OperationCanceledException)
            {
                broken = e; // keep what arrived before the break (or the cancel): a resume continues after it
            }
            if (filled > remaining)
            {
                throw new VerificationException($"{plan.RepoPath}: size mismatch: the server sends more than the {plan.Size} bytes of the tree listing (file not kept)");
            }
            if (filled > 0)
            {
                try
                {
                    await RandomAccess.WriteAsync(handle, buffer.AsMemory(0, filled), start + state.Done(index), CancellationToken.None).ConfigureAwait(false);
                }
                catch (IOException e)
                {
                    // a local write failure is not a network error: no retry
                    throw new ToolException(SnapshotFetcher.IsDiskFull(e)
                        ? $"disk full: cannot write '{plan.RepoPath}' under {store.Root} ({e.Message})"
                        : $"cannot write {_incomplete}: {e.Message}", e);
                }
                long offset = start + state.Done(index);
                Interlocked.Add(ref state.Written[index], filled);
                cursor.TryAppend(offset, buffer.AsSpan(0, filled)); // in-line when this is the next byte to hash
                Interlocked.Add(ref _received, filled);
                progress.Add(filled);
                signal.TryWrite(true);
            }
            if (broken is not null)
            {
                System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(broken);
            }
            if (eof)
            {
                if (state.Done(index) < length)
                {
                    throw new IOException($"connection closed after {state.Start(index) + state.Done(index)} of {plan.Size} bytes");
                }
                return;
            }
        }
    }

    /// <summary>
    /// Finishes the in-order hash: bytes a writer could not hash straight from its buffer (chunks that finished
    /// ahead of the frontier, data from an earlier run) are read back as soon as the contiguous prefix covers them.
    /// </summary>
    private async Task<string> HashAsync(SafeFileHandle handle, ChunkState state, HashCursor cursor, ChannelReader<bool> signal, CancellationToken ct)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            while (true)
            {
                if (cursor.CatchUp(handle, state.Frontier(), buffer, _incomplete) >= plan.Size)
                {
                    logger.LogDebug("{Path}: {Inline} hashed in-line, {Back} read back", plan.RepoPath, SizeParser.Format(plan.Size - cursor.ReadBack), SizeParser.Format(cursor.ReadBack));
                    return cursor.Finish();
                }
                await signal.ReadAsync(ct).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}

/// <summary>
/// The in-order hash of a file whose chunks arrive out of order. A writer whose bytes start exactly at the hash
/// position hashes them from its buffer (no second read); otherwise the hasher reads them back from the file
/// once the contiguous prefix reaches them. Writers never wait for the lock.
/// </summary>
internal sealed class HashCursor(HashKind kind, long size) : IDisposable
{
    private readonly object _gate = new();
    private readonly System.Security.Cryptography.IncrementalHash _hash = LocalState.StartHash(kind, size);
    private long _hashed;

    /// <summary>Bytes that had to be read back from the file.</summary>
    public long ReadBack { get; private set; }

    /// <summary>Hashes [offset, offset+data.Length) if it is next and the lock is free; the bytes are already in the file.</summary>
    public bool TryAppend(long offset, ReadOnlySpan<byte> data)
    {
        if (!Monitor.TryEnter(_gate))
        {
            return false;
        }
        try
        {
            if (_hashed != offset)
            {
                return false;
            }
            _hash.AppendData(data);
            _hashed += data.Length;
            return true;
        }
        finally
        {
            Monitor.Exit(_gate);
        }
    }

    /// <summary>Reads back and hashes everything up to <paramref name="frontier"/>; returns the hash position.</summary>
    public long CatchUp(SafeFileHandle handle, long frontier, byte[] buffer, string path)
    {
        lock (_gate)
        {
            while (_hashed < frontier)
            {
                int want = (int)Math.Min(buffer.Length, frontier - _hashed);
                int n = RandomAccess.Read(handle, buffer.AsSpan(0, want), _hashed);
                if (n <= 0)
                {
                    throw new IOException($"{path} is shorter than expected");
                }
                _hash.AppendData(buffer, 0, n);
                _hashed += n;
                ReadBack += n;
            }
            return _hashed;
        }
    }

    public string Finish()
    {
        lock (_gate)
        {
            return Convert.ToHexStringLower(_hash.GetHashAndReset());
        }
    }

    public void Dispose() => _hash.Dispose();
}
