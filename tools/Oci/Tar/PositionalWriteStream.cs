using Microsoft.Win32.SafeHandles;

namespace ModelCar.Oci.Tar;

/// <summary>
/// Sequential writes into a shared file handle starting at a fixed offset (pwrite), so several
/// writers can fill disjoint regions of one file in parallel.
/// </summary>
public sealed class PositionalWriteStream(SafeFileHandle handle, long offset) : Stream
{
    private long _position = offset;

    public long Start { get; } = offset;

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => _position - Start;
    public override long Position { get => _position - Start; set => throw new NotSupportedException(); }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        RandomAccess.Write(handle, buffer, _position);
        _position += buffer.Length;
    }

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
