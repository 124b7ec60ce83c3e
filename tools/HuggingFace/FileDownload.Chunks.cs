using System.Buffers;
using System.Threading.Channels;
using Microsoft.Win32.SafeHandles;
using Microsoft.Extensions.Logging;
using ModelCar.Common;
using ModelCar.Common.Http;
using ModelCar.Common.IO;

namespace ModelCar.HuggingFace;

/// <summary>The byte copying of a <see cref="FileDownload"/>: response bodies into the partial file at their offsets, hashed in order.</summary>
internal sealed partial class FileDownload
{
    private const int BufferSize = 1 << 20;

    /// <summary>Streams one chunk to its offsets; a cut connection continues with Range from the last byte written.</summary>
    private async Task RunChunkAsync(SafeFileHandle handle, ChunkState state, InOrderHasher cursor, int index, HubResponse? initial, ChannelWriter<bool> signal, CancellationToken ct)
    {
        var settings = client.Settings;
        var retries = RetryPolicy.From(settings, logger).Begin(plan.RepoPath);
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
                catch (Exception e) when (HttpRetry.IsTransient(e, ct) && !ct.IsCancellationRequested && Counted(retries, state.Done(index) > before))
                {
                    // the one policy's count, delay and log line (no response here: a body broke, so no Retry-After)
                    await retries.WaitAsync($"transfer broke at byte {state.Start(index) + state.Done(index)} ({ErrorText.Describe(e)})", "continuing with Range",
                        null, ct).ConfigureAwait(false);
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

    /// <summary>Counts a failure in the budget (a chunk that got further first starts a new run); false when none is left.</summary>
    private static bool Counted(RetryBudget retries, bool progressed)
    {
        if (progressed)
        {
            retries.Progressed();
        }
        return retries.TryFail();
    }

    private async Task CopyChunkAsync(Stream body, SafeFileHandle handle, ChunkState state, InOrderHasher cursor, int index, byte[] buffer, ChannelWriter<bool> signal, CancellationToken ct)
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
                    throw new HubException(SnapshotFetcher.IsDiskFull(e)
                        ? $"disk full: cannot write '{plan.RepoPath}' under {store.Root} ({e.Message})"
                        : $"cannot write {_partial.Incomplete}: {e.Message}", e);
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
    private async Task<string> HashAsync(SafeFileHandle handle, ChunkState state, InOrderHasher cursor, ChannelReader<bool> signal, CancellationToken ct)
    {
        byte[] buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            while (true)
            {
                if (cursor.CatchUp(handle, state.Frontier(), buffer, _partial.Incomplete) >= plan.Size)
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
