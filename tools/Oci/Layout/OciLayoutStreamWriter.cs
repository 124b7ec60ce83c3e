using ModelCar.Common.IO;
using ModelCar.Oci.Tar;

namespace ModelCar.Oci.Layout;

public static class OciLayoutStreamWriter
{
    /// <summary>
    /// Push-style counterpart of <see cref="OciLayout.WriteBlobAsync"/> for content that is produced
    /// by a writer (a layer tar): <paramref name="write"/> writes into a temp file in blobs/sha256
    /// while it is hashed; the file is then renamed to its digest (or dropped if that blob already
    /// exists — blobs are never rewritten). Each byte is written once and never read back.
    /// </summary>
    public static Descriptor WriteBlob(this OciLayout layout, Action<Stream> write, string mediaType)
    {
        var dir = Path.Combine(layout.Root, "blobs", "sha256");
        Files.EnsureDirectory(dir);
        var tmp = Path.Combine(dir, $".tmp-{Guid.NewGuid():N}");
        try
        {
            Digest digest;
            long size;
            using (var file = Files.CreateFile(tmp, bufferSize: 0, mode: FileMode.CreateNew))
            using (var buffered = new BufferedStream(file, 1 << 20))
            using (var hashing = new HashingWriteStream(buffered, leaveOpen: true))
            {
                write(hashing);
                buffered.Flush();
                digest = hashing.GetDigest();
                size = hashing.BytesWritten;
            }
            return layout.CommitTempBlob(tmp, digest, size, mediaType);
        }
        catch
        {
            Files.TryDelete(tmp);
            throw;
        }
    }
}
