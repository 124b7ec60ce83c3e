namespace ModelCar.Oci;

/// <summary>
/// Where an image's blobs come from: an image layout directory, an oci-archive read in place, or
/// a registry. Implementations return raw blob streams; <see cref="ImageSourceExtensions"/>
/// adds verification.
/// </summary>
public interface IImageSource : IDisposable
{
    /// <summary>For messages: "oci:/path:tag" and the like.</summary>
    string Description { get; }

    /// <summary>
    /// The root descriptor for a reference, as skopeo selects it: the index entry whose
    /// org.opencontainers.image.ref.name equals <paramref name="reference"/>, or with no reference
    /// the only entry of the index.
    /// </summary>
    Descriptor ResolveRoot(string? reference);

    /// <summary>Opens a blob's raw bytes. Throws <see cref="BlobNotFoundException"/> if absent.</summary>
    Stream OpenBlob(Descriptor descriptor);
}

public sealed class BlobNotFoundException(string message) : OciException(message);

public sealed class ReferenceNotFoundException(string message) : OciException(message);

public static class ImageSourceExtensions
{
    /// <summary>Opens a blob wrapped in a <see cref="VerifyingStream"/>.</summary>
    public static Stream OpenVerified(this IImageSource source, Descriptor descriptor) =>
        new VerifyingStream(source.OpenBlob(descriptor), descriptor.Digest, descriptor.Size, $"{source.Description}: blob {descriptor.Digest}");

    /// <summary>Reads a small JSON blob (manifest, index, config) fully, verified, at most 4 MiB.</summary>
    public static byte[] ReadSmallBlob(this IImageSource source, Descriptor descriptor)
    {
        if (descriptor.Size > OciJson.MaxManifestBytes)
        {
            throw new InvalidDataException($"{source.Description}: {descriptor.MediaType} {descriptor.Digest} is {descriptor.Size} bytes (limit {OciJson.MaxManifestBytes})");
        }
        using var stream = source.OpenVerified(descriptor);
        var buffer = new byte[descriptor.Size];
        stream.ReadExactly(buffer);
        Span<byte> probe = stackalloc byte[1];
        if (stream.Read(probe) != 0)
        {
            throw new DigestMismatchException($"{source.Description}: blob {descriptor.Digest} is longer than {descriptor.Size} bytes");
        }
        return buffer;
    }

    /// <summary>The direct children: config + layers of a manifest, or the manifests of an index.</summary>
    public static IReadOnlyList<Descriptor> ChildrenOf(this IImageSource source, Descriptor manifestOrIndex, byte[] json)
    {
        if (MediaTypes.IsIndex(manifestOrIndex.MediaType))
        {
            return OciJson.Deserialize(json, OciJson.Index, $"index {manifestOrIndex.Digest}").Manifests;
        }
        var manifest = OciJson.Deserialize(json, OciJson.Manifest, $"manifest {manifestOrIndex.Digest}");
        return [manifest.Config, .. manifest.Layers];
    }
}
