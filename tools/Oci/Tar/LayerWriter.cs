using System.Formats.Tar;

namespace ModelCar.Oci.Tar;

public enum LayerEntryKind
{
    Directory,
    File,
    Symlink,
}

/// <summary>
/// One entry of a layer tar. <see cref="TarPath"/> is relative to the image root without a leading
/// slash ("models/sub/a.bin"); directories have no trailing slash here.
/// </summary>
/// <para><see cref="ModifiedUtc"/>, when set, is the file's mtime when scanned: reading fails if it differs.</para>
public sealed record LayerEntry(string TarPath, LayerEntryKind Kind, string? SourcePath = null, long Size = 0, string? LinkTarget = null, DateTime? ModifiedUtc = null);

/// <summary>Ownership, modes and time stamped on every entry (nothing taken from the host file system).</summary>
public sealed record LayerEntryAttributes
{
    public int Uid { get; init; }
    public int Gid { get; init; }
    public DateTimeOffset ModificationTime { get; init; } = DateTimeOffset.UnixEpoch;
    public UnixFileMode FileMode { get; init; } = (UnixFileMode)0b110_100_100; // 0644
    public UnixFileMode DirectoryMode { get; init; } = (UnixFileMode)0b111_101_101; // 0755
}

/// <summary>
/// The rules of a reproducible, uncompressed layer tar in GNU format: each entry's header and the
/// layer's exact size (the bytes themselves are <see cref="TarLayer"/>'s, the one tar writer).
/// <para>
/// Why System.Formats.Tar and not SharpCompress: its <see cref="TarWriter"/> writes
/// <see cref="TarEntryFormat.Gnu"/> headers with base-256 (binary) sizes for files of 8 GiB and more
/// and GNU long-name ('L') records, which is what the container tool chain reads everywhere (Clair
/// ignores a PAX <c>size</c> record, and ustar caps at 8 GiB). It also lets us set every header field
/// (uid/gid, mode, mtime) and leaves uname/gname/atime/ctime empty, so the bytes depend only on our
/// inputs. SharpCompress's tar writer targets ustar/PAX-less archives, gives no control over those
/// fields, and is an extra package; the BCL writer is AOT-clean and streams the file data through
/// without buffering.
/// </para>
/// <para>
/// The bytes come from <see cref="TarLayer"/> (the headers are <see cref="TarWriter"/>'s own): entry
/// data is copied straight from each source file, each model byte read once.
/// </para>
/// </summary>
public static class LayerWriter
{
    private const int Block = 512;

    /// <summary>
    /// The exact byte length of the layer tar over the entries, computed without reading any file data
    /// (<see cref="TarLayer.Size"/>): each GNU entry's header records do not depend on the data bytes
    /// (sizes of 8 GiB and more go base-256 into the same 12-byte field), data is padded to 512.
    /// </summary>
    public static long PredictSize(IReadOnlyList<LayerEntry> entries, LayerEntryAttributes attributes) => new TarLayer(entries, attributes).Size;

    internal static GnuTarEntry CreateEntry(LayerEntry entry, LayerEntryAttributes a)
    {
        var (type, name, mode) = entry.Kind switch
        {
            LayerEntryKind.Directory => (TarEntryType.Directory, entry.TarPath + "/", a.DirectoryMode),
            LayerEntryKind.File => (TarEntryType.RegularFile, entry.TarPath, a.FileMode),
            LayerEntryKind.Symlink => (TarEntryType.SymbolicLink, entry.TarPath, (UnixFileMode)0b111_111_111),
            _ => throw new ArgumentOutOfRangeException(nameof(entry)),
        };
        var e = new GnuTarEntry(type, name)
        {
            Uid = a.Uid,
            Gid = a.Gid,
            Mode = mode,
            ModificationTime = a.ModificationTime,
            // no atime/ctime, no user/group names: only what we set goes into the bytes
            AccessTime = default,
            ChangeTime = default,
            UserName = string.Empty,
            GroupName = string.Empty,
        };
        if (entry.Kind == LayerEntryKind.Symlink)
        {
            e.LinkName = entry.LinkTarget ?? throw new ArgumentException($"symlink {entry.TarPath} has no target", nameof(entry));
        }
        return e;
    }
}
