using ModelCar.Oci;

namespace ModelCar.Oci.Tests;

/// <summary>The one-read fan-out: every writer gets every byte, the slowest sets the pace, failures abandon all.</summary>
public sealed class BlobFanOutTests
{
    private sealed class RecordingWriter(int delayMs = 0, long failAt = -1) : IBlobWriter
    {
        public MemoryStream Received { get; } = new();
        public Digest? Committed { get; private set; }
        public bool Disposed { get; private set; }

        public async ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
        {
            if (delayMs > 0)
            {
                await Task.Delay(delayMs, ct);
            }
            if (failAt >= 0 && Received.Length + data.Length > failAt)
            {
                throw new IOException("destination failed");
            }
            Received.Write(data.Span);
        }

        public Task CommitAsync(Digest digest, CancellationToken ct)
        {
            Committed = digest;
            return Task.CompletedTask;
        }

        public ValueTask DisposeAsync()
        {
            Disposed = true;
            return ValueTask.CompletedTask;
        }
    }

    /// <summary>A source that records how far it was read.</summary>
    private sealed class CountingStream(byte[] data) : MemoryStream(data)
    {
        public long MaxRead => Position;
    }

    [Fact]
    public async Task Every_writer_gets_the_bytes_once_and_commits_the_digest_and_the_slowest_sets_the_pace()
    {
        var data = TestSupport.TempDir.RandomBytes(10 << 20, 4);
        var source = new CountingStream(data);
        var slow = new RecordingWriter(delayMs: 30);
        var fast = new RecordingWriter();
        var ahead = new List<long>();
        var probe = new ProbeWriter(() => ahead.Add(source.MaxRead - slow.Received.Length));
        var digest = await BlobFanOut.CopyAsync(() => source, data.Length, [slow, fast, probe], "test blob", CancellationToken.None);

        Assert.Equal(Digest.Sha256(data), digest);
        foreach (var w in new[] { slow, fast })
        {
            Assert.Equal(data, w.Received.ToArray());
            Assert.Equal(digest, w.Committed);
            Assert.True(w.Disposed);
        }
        // bounded: the read is never more than two buffers ahead of the slowest writer
        Assert.NotEmpty(ahead);
        Assert.All(ahead, a => Assert.InRange(a, 0, 2 * BlobFanOut.BufferSize));
    }

    /// <summary>A source that takes <paramref name="delayMs"/> per read (a slow Hub).</summary>
    private sealed class SlowStream(byte[] data, int delayMs) : MemoryStream(data)
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            await Task.Delay(delayMs, ct);
            return await base.ReadAsync(buffer[..Math.Min(buffer.Length, 256 << 10)], ct);
        }
    }

    [Fact]
    public async Task The_times_say_which_side_set_the_pace()
    {
        var data = TestSupport.TempDir.RandomBytes(8 << 20, 5);
        var slowOutputs = new FanOutTimes();
        await BlobFanOut.CopyAsync(() => new MemoryStream(data), data.Length, [new RecordingWriter(delayMs: 40)], "test blob", CancellationToken.None, times: slowOutputs);
        Assert.Equal("the outputs", slowOutputs.Bottleneck);
        Assert.True(slowOutputs.WaitingForOutputs >= TimeSpan.FromMilliseconds(6 * 40), $"waited {slowOutputs.WaitingForOutputs} for 8 writes of 40 ms");

        var slowSource = new FanOutTimes();
        await BlobFanOut.CopyAsync(() => new SlowStream(data, 10), data.Length, [new RecordingWriter()], "test blob", CancellationToken.None, times: slowSource);
        Assert.Equal("the source", slowSource.Bottleneck);
        Assert.True(slowSource.Reading >= TimeSpan.FromMilliseconds(32 * 10), $"read for {slowSource.Reading} in 32 reads of 10 ms");

        var sum = new FanOutTimes();
        sum.Add(slowOutputs);
        sum.Add(slowSource);
        Assert.InRange((slowOutputs.Reading + slowSource.Reading - sum.Reading).Duration(), TimeSpan.Zero, TimeSpan.FromMilliseconds(1)); // tick rounding only
        Assert.InRange((slowOutputs.WaitingForOutputs + slowSource.WaitingForOutputs - sum.WaitingForOutputs).Duration(), TimeSpan.Zero, TimeSpan.FromMilliseconds(1));
    }

    [Fact]
    public async Task A_failing_writer_fails_the_copy_and_every_writer_is_abandoned_without_commit()
    {
        var data = TestSupport.TempDir.RandomBytes(5 << 20, 5);
        var good = new RecordingWriter();
        var bad = new RecordingWriter(failAt: 3 << 20);
        var e = await Assert.ThrowsAsync<IOException>(() => BlobFanOut.CopyAsync(() => new MemoryStream(data), data.Length, [good, bad], "test blob", CancellationToken.None));
        Assert.Equal("destination failed", e.Message);
        Assert.Null(good.Committed);
        Assert.Null(bad.Committed);
        Assert.True(good.Disposed && bad.Disposed);
    }

    [Fact]
    public async Task A_source_shorter_than_planned_commits_nothing()
    {
        var good = new RecordingWriter();
        await Assert.ThrowsAsync<InvalidOperationException>(() => BlobFanOut.CopyAsync(() => new MemoryStream(new byte[1000]), 2000, [good], "test blob", CancellationToken.None));
        Assert.Null(good.Committed);
        Assert.True(good.Disposed);
    }

    private sealed class ProbeWriter(Action onWrite) : IBlobWriter
    {
        public ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
        {
            onWrite();
            return ValueTask.CompletedTask;
        }

        public Task CommitAsync(Digest digest, CancellationToken ct) => Task.CompletedTask;

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
