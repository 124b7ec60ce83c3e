using System.Security.Cryptography;
using ModelCar.Common.IO;

namespace ModelCar.Oci.Layout;

/// <summary>
/// An OCI image layout directory (<c>oci-layout</c>, <c>index.json</c>, <c>blobs/&lt;alg&gt;/&lt;hex&gt;</c>).
/// Reading follows skopeo's reference rules. Writing puts every blob through a temp file while
/// hashing and renames it into place; index.json is replaced atomically and written last, so an
/// interrupted write never leaves a layout that looks complete. Files 0644, directories 0755.
/// </summary>
public sealed class OciLayout : IImageSource
{
    private readonly object _indexLock = new();

    private OciLayout(string root)
    {
        Root = Path.GetFullPath(root);
    }

    public string Root { get; }

    public string Description => $"oci:{Root}";

    public string IndexPath => Path.Combine(Root, "index.json");

    /// <summary>
    /// The advisory lock a writer holds on the layout for its whole run (<see cref="FileLock"/>): writers
    /// into one layout take turns, so index.json updates cannot lose each other's tags and temp files
    /// found by the lock holder are left by dead runs. Readers (skopeo, umoci) ignore the file.
    /// </summary>
    public const string WriterLockFile = ".oci-pack.lock";

    public static string WriterLockPath(string root) => Path.Combine(Path.GetFullPath(root), WriterLockFile);

    /// <summary>Opens an existing layout; clear errors when the directory or its files are missing.</summary>
    public static OciLayout Open(string root)
    {
        var layout = new OciLayout(root);
        if (!Directory.Exists(layout.Root))
        {
            throw new DirectoryNotFoundException($"OCI layout '{root}' does not exist");
        }
        var marker = Path.Combine(layout.Root, "oci-layout");
        if (!File.Exists(marker))
        {
            throw new InvalidDataException($"'{root}' is not an OCI image layout: no oci-layout file");
        }
        var version = OciJson.Deserialize(File.ReadAllBytes(marker), OciJson.LayoutMarker, $"{marker}");
        if (!version.ImageLayoutVersion.StartsWith("1.", StringComparison.Ordinal))
        {
            throw new InvalidDataException($"'{marker}': unsupported imageLayoutVersion {version.ImageLayoutVersion}");
        }
        if (!File.Exists(layout.IndexPath))
        {
            throw new InvalidDataException($"'{root}' is not an OCI image layout: no index.json");
        }
        return layout;
    }

    /// <summary>Opens a layout, creating the directory, oci-layout and blobs/ if needed (index.json comes with the first manifest).</summary>
    public static OciLayout OpenOrCreate(string root)
    {
        var layout = new OciLayout(root);
        Files.EnsureDirectory(layout.Root);
        Files.EnsureDirectory(Path.Combine(layout.Root, "blobs", "sha256"));
        var marker = Path.Combine(layout.Root, "oci-layout");
        if (!File.Exists(marker))
        {
            Files.WriteAllBytesAtomic(marker, OciJson.Serialize(new OciLayoutMarker(), OciJson.LayoutMarker));
        }
        return layout;
    }

    public ImageIndex ReadIndex()
    {
        if (!File.Exists(IndexPath))
        {
            return new ImageIndex();
        }
        return OciJson.Deserialize(File.ReadAllBytes(IndexPath), OciJson.Index, IndexPath);
    }

    public Descriptor ResolveRoot(string? reference) => ResolveRoot(ReadIndex(), reference, Description);

    /// <summary>skopeo's rule: by exact ref.name; without one, the index must hold exactly one manifest.</summary>
    public static Descriptor ResolveRoot(ImageIndex index, string? reference, string description)
    {
        if (reference is null)
        {
            return index.Manifests.Count switch
            {
                1 => index.Manifests[0],
                0 => throw new ReferenceNotFoundException($"{description}: the index holds no image"),
                _ => throw new ReferenceNotFoundException(
                    $"{description}: the index holds {index.Manifests.Count} images; name one as {description}:REF (refs: {string.Join(", ", index.Manifests.Select(m => m.RefName ?? m.Digest.ToString()))})"),
            };
        }
        var matches = index.Manifests.Where(m => m.RefName == reference).ToList();
        return matches.Count switch
        {
            1 => matches[0],
            0 => throw new ReferenceNotFoundException($"{description}: no image with reference '{reference}' (refs: {string.Join(", ", index.Manifests.Select(m => m.RefName).OfType<string>().DefaultIfEmpty("none"))})"),
            _ => throw new ReferenceNotFoundException($"{description}: reference '{reference}' names {matches.Count} images"),
        };
    }

    public string BlobPath(Digest digest) => Path.Combine(Root, "blobs", digest.Algorithm, digest.Encoded);

    public bool HasBlob(Digest digest) => File.Exists(BlobPath(digest));

    public Stream OpenBlob(Descriptor descriptor)
    {
        var path = BlobPath(descriptor.Digest);
        try
        {
            return Files.OpenRead(path);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new BlobNotFoundException($"{Description}: blob {descriptor.Digest} is missing ({path})");
        }
    }

    /// <summary>Stores a small blob (manifest, config) from memory; existing blobs are not rewritten.</summary>
    public Descriptor WriteBlob(ReadOnlySpan<byte> content, string mediaType, IReadOnlyDictionary<string, string>? annotations = null)
    {
        var digest = Digest.Sha256(content);
        var path = BlobPath(digest);
        if (!File.Exists(path))
        {
            Files.EnsureDirectory(Path.GetDirectoryName(path)!);
            Files.WriteAllBytesAtomic(path, content);
        }
        return new Descriptor { MediaType = mediaType, Digest = digest, Size = content.Length, Annotations = annotations };
    }

    /// <summary>A writer for one blob of known size whose digest the caller computes while writing (see <see cref="LayoutBlobWriter"/>).</summary>
    public LayoutBlobWriter OpenBlobWriter(long size, string mediaType) => new(this, size, mediaType);

    /// <summary>
    /// Moves a fully written, hashed temp file (in this layout's blob directory) to its digest's path;
    /// if that blob already exists (also: appeared meanwhile, written by another process) the temp file
    /// is dropped, since blobs are never rewritten and equal digests mean equal bytes.
    /// </summary>
    internal Descriptor CommitTempBlob(string tmp, Digest digest, long size, string mediaType)
    {
        var path = BlobPath(digest);
        if (File.Exists(path))
        {
            Files.TryDelete(tmp);
        }
        else
        {
            try
            {
                File.Move(tmp, path);
            }
            catch (IOException) when (File.Exists(path))
            {
                Files.TryDelete(tmp);
            }
        }
        return new Descriptor { MediaType = mediaType, Digest = digest, Size = size };
    }

    /// <summary>
    /// Deletes the temp files of earlier runs that died (SIGKILL leaves a half-written <c>.tmp-*</c> blob or
    /// an index temp). Only call while holding <see cref="WriterLockFile"/>: then no live writer owns any.
    /// Returns how many files and bytes were removed.
    /// </summary>
    public (int Files, long Bytes) RemoveStaleTempFiles()
    {
        int count = 0;
        long bytes = 0;
        foreach (var (dir, pattern) in new[] { (Root, ".*.tmp"), (Path.Combine(Root, "blobs", "sha256"), ".tmp-*"), (Path.Combine(Root, "blobs", "sha256"), ".*.tmp") })
        {
            if (!Directory.Exists(dir))
            {
                continue;
            }
            foreach (var tmp in Directory.EnumerateFiles(dir, pattern))
            {
                var length = new FileInfo(tmp).Length;
                Files.TryDelete(tmp);
                if (!File.Exists(tmp))
                {
                    count++;
                    bytes += length;
                }
            }
        }
        return (count, bytes);
    }

    /// <summary>
    /// Adds a manifest (or index) descriptor to index.json under <paramref name="refName"/>. An entry
    /// with the same ref.name is replaced; other tags are kept; index.json is replaced atomically. The
    /// index is read again here, so with the writer lock held (see <see cref="WriterLockFile"/>) the
    /// tags other processes added before are merged, not overwritten.
    /// </summary>
    public void AddToIndex(Descriptor root, string? refName)
    {
        lock (_indexLock)
        {
            var index = ReadIndex();
            var annotations = new Dictionary<string, string>(root.Annotations ?? new Dictionary<string, string>());
            if (refName is not null)
            {
                annotations[Annotations.RefName] = refName;
            }
            var entry = root with { Annotations = annotations.Count == 0 ? null : annotations };
            var kept = index.Manifests.Where(m => refName is null
                ? !(m.Digest == root.Digest && m.RefName is null)
                : m.RefName != refName).ToList();
            kept.Add(entry);
            var updated = index with { MediaType = MediaTypes.ImageIndex, Manifests = kept };
            Files.WriteAllBytesAtomic(IndexPath, OciJson.Serialize(updated, OciJson.Index));
        }
    }

    public void Dispose()
    {
    }
}
