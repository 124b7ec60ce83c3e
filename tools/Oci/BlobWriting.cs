namespace ModelCar.Oci;

/// <summary>
/// A blob whose bytes can be produced again from any offset: a file, or a tar layer generated from
/// model files (header blocks + file ranges + padding). Lets a destination that lost bytes (a cut
/// upload, a session that died) catch up without a temp copy.
/// </summary>
public interface IRereadableBlob
{
    /// <summary>Exact size, known before any byte is read.</summary>
    long Size { get; }

    /// <summary>Opens the bytes from <paramref name="offset"/> to the end (raw, not verified).</summary>
    Stream OpenAt(long offset);
}

/// <summary>
/// Receives one blob's bytes in order while the caller hashes them (the digest is known only after
/// the last byte). One producer feeds several writers (layout, archive, registries) from one read;
/// the slowest writer sets the pace. A writer recovers from its own faults inside
/// <see cref="WriteAsync"/> (e.g. re-reading the bytes the registry lost from the
/// <see cref="IRereadableBlob"/> it was opened with). Disposing without <see cref="CommitAsync"/>
/// abandons the blob: nothing becomes visible under a digest.
/// </summary>
public interface IBlobWriter : IAsyncDisposable
{
    /// <summary>Appends the next bytes. May wait while the destination catches up or recovers.</summary>
    ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken ct);

    /// <summary>After the last byte: stores the blob under <paramref name="digest"/> (the caller's hash
    /// of every byte written); the destination verifies it where it can (registry: PUT ?digest=).</summary>
    Task CommitAsync(Digest digest, CancellationToken ct);
}
