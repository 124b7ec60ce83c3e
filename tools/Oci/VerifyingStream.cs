using System.Security.Cryptography;

namespace ModelCar.Oci;

/// <summary>The content read does not match its descriptor (digest or size).</summary>
public sealed class DigestMismatchException(string message) : OciException(message);

/// <summary>
/// Verify-on-read: passes bytes through while hashing them, and at end of stream checks size and
/// digest against the descriptor. A short, long or altered blob throws; nothing is read twice.
/// </summary>
public sealed class VerifyingStream : ModelCar.Common.IO.ReadOnlyWrapperStream
{
    private readonly Digest _expected;
    private readonly long _expectedSize;
    private readonly string _what;
    private readonly IncrementalHash _hash;
    private long _read;
    private bool _verified;

    public VerifyingStream(Stream inner, Digest expected, long expectedSize, string what)
        : base(inner)
    {
        if (expected.Algorithm is not "sha256" and not "sha512")
        {
            throw new NotSupportedException($"digest algorithm '{expected.Algorithm}'");
        }
        _expected = expected;
        _expectedSize = expectedSize;
        _what = what;
        _hash = IncrementalHash.CreateHash(expected.Algorithm == "sha512" ? HashAlgorithmName.SHA512 : HashAlgorithmName.SHA256);
    }

    public override long Length => _expectedSize;
    public override long Position { get => _read; set => throw new NotSupportedException(); }

    public override int Read(Span<byte> buffer)
    {
        int n = Inner.Read(buffer);
        return Account(buffer[..n], n);
    }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        int n = await Inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
        return Account(buffer.Span[..n], n);
    }

    private int Account(ReadOnlySpan<byte> data, int n)
    {
        if (n > 0)
        {
            _read += n;
            if (_read > _expectedSize)
            {
                throw new DigestMismatchException($"{_what}: more than the {_expectedSize} bytes its descriptor states");
            }
            _hash.AppendData(data);
        }
        else if (!_verified)
        {
            Verify();
        }
        return n;
    }

    private void Verify()
    {
        _verified = true;
        if (_read != _expectedSize)
        {
            throw new DigestMismatchException($"{_what}: {_read} bytes where its descriptor states {_expectedSize}");
        }
        var actual = _expected.Algorithm == "sha512"
            ? Digest.Parse("sha512:" + Convert.ToHexStringLower(_hash.GetHashAndReset()))
            : Digest.FromSha256Hash(_hash.GetHashAndReset());
        if (!actual.Matches(_expected))
        {
            throw new DigestMismatchException($"{_what}: content digest {actual} does not match {_expected}");
        }
    }


    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _hash.Dispose();
        }
        base.Dispose(disposing);
    }
}
