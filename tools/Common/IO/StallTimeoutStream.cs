namespace ModelCar.Common.IO;

/// <summary>
/// Read-only wrapper over a network stream: each read must make progress within the stall
/// timeout, else it throws <see cref="TimeoutException"/> (a retryable network failure) with
/// <paramref name="stallMessage"/> (say which URL, e.g. "no data from URL for 60 s (timeout)").
/// </summary>
public sealed class StallTimeoutStream(Stream inner, TimeSpan stallTimeout, string? stallMessage = null) : ReadOnlyWrapperStream(inner)
{

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(stallTimeout);
        try
        {
            return await Inner.ReadAsync(buffer, cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException(stallMessage ?? $"no data for {stallTimeout.TotalSeconds:0} s (timeout)");
        }
    }

    public override int Read(Span<byte> buffer)
    {
        var rented = System.Buffers.ArrayPool<byte>.Shared.Rent(buffer.Length);
        try
        {
            int n = ReadAsync(rented.AsMemory(0, buffer.Length)).AsTask().GetAwaiter().GetResult();
            rented.AsSpan(0, n).CopyTo(buffer);
            return n;
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        }
    }
}
