using System.Net;

namespace ModelCar.Common.Http;

/// <summary>
/// Request body streamed from a source in 1 MiB pieces: never buffered, reports progress, and
/// aborts if a write stalls for longer than the stall timeout (the server stopped reading).
/// Created per attempt, so retries read the source again from their own offset.
/// </summary>
public sealed class StreamingContent : HttpContent
{
    private readonly Func<Stream> _open;
    private readonly long _length;
    private readonly Action<long>? _progress;
    private readonly TimeSpan _stallTimeout;

    public StreamingContent(Func<Stream> open, long length, Action<long>? progress, TimeSpan stallTimeout)
    {
        _open = open;
        _length = length;
        _progress = progress;
        _stallTimeout = stallTimeout;
        Headers.ContentLength = length;
    }

    public const int BufferSize = 1 << 20;

    protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) =>
        SerializeToStreamAsync(stream, context, CancellationToken.None);

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken cancellationToken)
    {
        await using var source = _open();
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            long remaining = _length;
            using var stall = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            while (remaining > 0)
            {
                int want = (int)Math.Min(buffer.Length, remaining);
                int read = await source.ReadAsync(buffer.AsMemory(0, want), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    throw new IOException($"source ended {remaining} bytes early");
                }
                stall.CancelAfter(_stallTimeout);
                try
                {
                    await stream.WriteAsync(buffer.AsMemory(0, read), stall.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new TimeoutException($"upload stalled: no progress for {_stallTimeout.TotalSeconds:0} s");
                }
                stall.CancelAfter(Timeout.InfiniteTimeSpan);
                remaining -= read;
                _progress?.Invoke(read);
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = _length;
        return true;
    }
}
