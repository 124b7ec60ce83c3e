using System.Buffers;
using System.Diagnostics;
using System.Security.Cryptography;

namespace ModelCar.Oci;

/// <summary>
/// One read, N destinations: reads a blob once, hashes it, and hands each buffer to every
/// <see cref="IBlobWriter"/> (all at once; the next buffer is read while they write this one, and
/// no buffer is read before all writers took the previous one, so the slowest sets the pace and
/// memory stays at two buffers per blob). After the last byte every writer commits the digest; on
/// any failure every writer is disposed without commit (each abandons its blob).
/// <para>
/// The one copy engine of every output: model layers (hashed here: their digest is known only at
/// the end), and base blobs (<c>known</c>: the source stream verifies the digest it was asked for,
/// so it is not hashed twice) go through the same writers: layout, archive and registry beside each other.
/// </para>
/// </summary>
public static class BlobFanOut
{
    public const int BufferSize = 1 << 20;

    /// <summary>Copies <paramref name="open"/>'s bytes (exactly <paramref name="size"/>) to the writers; returns their digest.</summary>
    /// <param name="observe">Also given every buffer, in order, while the writers write it (e.g. to hash each file of a layer);
    /// it runs before the commit, so throwing from it abandons every blob.</param>
    /// <param name="times">Where the time goes: reading the source vs waiting for the writers (which side is the bottleneck).</param>
    /// <param name="known">The digest, when <paramref name="open"/> verifies it while it is read (it throws before its end
    /// otherwise): the bytes are not hashed again and the writers commit this digest.</param>
    /// <param name="progress">Told the bytes of every buffer handed to the writers.</param>
    public static async Task<Digest> CopyAsync(Func<Stream> open, long size, IReadOnlyList<IBlobWriter> writers, string what, CancellationToken ct,
        Action<ReadOnlyMemory<byte>>? observe = null, FanOutTimes? times = null, Digest? known = null, Action<long>? progress = null)
    {
        var buffers = new[] { ArrayPool<byte>.Shared.Rent(BufferSize), ArrayPool<byte>.Shared.Rent(BufferSize) };
        bool committed = false;
        try
        {
            using var hash = known is null ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null;
            long total = 0;
            Task pending = Task.CompletedTask;
            await using (var input = open())
            {
                for (int turn = 0; ; turn ^= 1)
                {
                    var buffer = buffers[turn];
                    long t0 = Stopwatch.GetTimestamp();
                    int n = await FillAsync(input, buffer, ct).ConfigureAwait(false);
                    long t1 = Stopwatch.GetTimestamp();
                    await pending.ConfigureAwait(false); // the writers still busy with the previous buffer: they are slower than the source
                    times?.Add(t1 - t0, Stopwatch.GetTimestamp() - t1);
                    if (n == 0)
                    {
                        break;
                    }
                    total += n;
                    if (total > size)
                    {
                        throw new InvalidOperationException($"{what}: more than the {size} bytes planned");
                    }
                    hash?.AppendData(buffer, 0, n);
                    progress?.Invoke(n);
                    var data = buffer.AsMemory(0, n);
                    pending = observe is null
                        ? WriteAllAsync(writers, data, ct)
                        : Task.WhenAll(WriteAllAsync(writers, data, ct), Task.Run(() => observe(data), ct));
                }
            }
            if (total != size)
            {
                throw new InvalidOperationException($"{what}: {total} bytes where {size} were planned");
            }
            var digest = known ?? Digest.FromSha256Hash(hash!.GetHashAndReset());
            await Task.WhenAll(writers.Select(w => w.CommitAsync(digest, ct))).ConfigureAwait(false);
            committed = true;
            return digest;
        }
        finally
        {
            // after a commit this only releases resources; without one it abandons every blob
            foreach (var w in writers)
            {
                try
                {
                    await w.DisposeAsync().ConfigureAwait(false);
                }
                catch (Exception) when (!committed)
                {
                    // the first failure is what the caller reports
                }
            }
            ArrayPool<byte>.Shared.Return(buffers[0]);
            ArrayPool<byte>.Shared.Return(buffers[1]);
        }
    }

    private static async Task WriteAllAsync(IReadOnlyList<IBlobWriter> writers, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        if (writers.Count == 1)
        {
            await writers[0].WriteAsync(data, ct).ConfigureAwait(false);
            return;
        }
        var tasks = new Task[writers.Count];
        for (int i = 0; i < writers.Count; i++)
        {
            tasks[i] = writers[i].WriteAsync(data, ct).AsTask();
        }
        await Task.WhenAll(tasks).ConfigureAwait(false);
    }

    private static async Task<int> FillAsync(Stream input, byte[] buffer, CancellationToken ct)
    {
        int filled = 0;
        while (filled < BufferSize)
        {
            int n = await input.ReadAsync(buffer.AsMemory(filled, BufferSize - filled), ct).ConfigureAwait(false);
            if (n == 0)
            {
                break;
            }
            filled += n;
        }
        return filled;
    }
}

/// <summary>
/// Where a fan-out's time goes, summed over its blobs: reading the source (model files, or the Hub for
/// hf://) and waiting for the writers after a read was done. The next buffer is read while the writers
/// write the last one, so a wait for the writers means the outputs are slower than the source.
/// </summary>
public sealed class FanOutTimes
{
    private long _read;
    private long _wait;

    public TimeSpan Reading => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _read));

    public TimeSpan WaitingForOutputs => Stopwatch.GetElapsedTime(0, Interlocked.Read(ref _wait));

    public void Add(long readTicks, long waitTicks)
    {
        Interlocked.Add(ref _read, readTicks);
        Interlocked.Add(ref _wait, waitTicks);
    }

    public void Add(FanOutTimes other) => Add(Interlocked.Read(ref other._read), Interlocked.Read(ref other._wait));

    /// <summary>"the source" or "the outputs": the side the other one waited for most.</summary>
    public string Bottleneck => WaitingForOutputs > Reading ? "the outputs" : "the source";
}
