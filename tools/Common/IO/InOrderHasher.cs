using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;

namespace ModelCar.Common.IO;

/// <summary>
/// The in-order hash of a file whose chunks arrive out of order. A writer whose bytes start exactly at the hash
/// position hashes them from its buffer (no second read); otherwise the hasher reads them back from the file
/// once the contiguous prefix reaches them. Writers never wait for the lock.
/// </summary>
public sealed class InOrderHasher(IncrementalHash hash) : IDisposable
{
    private readonly object _gate = new();
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
            hash.AppendData(data);
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
                hash.AppendData(buffer, 0, n);
                _hashed += n;
                ReadBack += n;
            }
            return _hashed;
        }
    }

    /// <summary>The lower-case hex hash of everything appended.</summary>
    public string Finish()
    {
        lock (_gate)
        {
            return Convert.ToHexStringLower(hash.GetHashAndReset());
        }
    }

    public void Dispose() => hash.Dispose();
}
