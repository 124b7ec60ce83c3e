namespace ModelCar.Oci;

/// <summary>The images on local disk: an OCI image layout (oci:DIR[:REF]) or an oci-archive (oci-archive:FILE[:REF]).</summary>
public static class LocalImage
{
    /// <summary>True for oci: and oci-archive: locations.</summary>
    public static bool IsLocal(ImageLocation location) => location is OciLayoutLocation or OciArchiveLocation;

    /// <summary>Opens the layout or archive (reading only its index); another location is an <see cref="ArgumentException"/>.</summary>
    public static IImageSource Open(ImageLocation location) => location switch
    {
        OciLayoutLocation l => Layout.OciLayout.Open(l.Path),
        OciArchiveLocation a => Archive.OciArchiveReader.Open(a.Path),
        _ => throw new ArgumentException($"{location} is not an image on local disk (oci: or oci-archive:)", nameof(location)),
    };

    /// <summary>The REF of oci:DIR:REF or oci-archive:FILE:REF (org.opencontainers.image.ref.name), or null.</summary>
    public static string? ReferenceOf(ImageLocation location) => location switch
    {
        OciLayoutLocation l => l.Reference,
        OciArchiveLocation a => a.Reference,
        _ => null,
    };

    /// <summary>
    /// A file beside the layout directory or archive, named after it plus <paramref name="suffix"/> (it survives a
    /// Tekton retry with the source's workspace).
    /// </summary>
    public static string Beside(ImageLocation location, string suffix) => location switch
    {
        OciLayoutLocation l => Path.TrimEndingDirectorySeparator(Path.GetFullPath(l.Path)) + suffix,
        OciArchiveLocation a => Path.GetFullPath(a.Path) + suffix,
        _ => throw new ArgumentException($"{location} is not an image on local disk (oci: or oci-archive:)", nameof(location)),
    };
}
