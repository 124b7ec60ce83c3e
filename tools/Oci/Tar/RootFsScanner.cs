using System.Formats.Tar;
using System.IO.Compression;
using ModelCar.Common.IO;

namespace ModelCar.Oci.Tar;

/// <summary>
/// The file names of an image's root file system, built by reading the layers' tar headers in order
/// (whiteouts applied). Used to check that a base image provides what KServe runs (/bin/sh).
/// Data is skipped, nothing is extracted; compressed layers are decompressed on the fly for the
/// scan only.
/// </summary>
public sealed class RootFsScanner
{
    private const string WhiteoutPrefix = ".wh.";
    private const string OpaqueMarker = ".wh..wh..opq";

    // path (no leading slash) -> symlink target, or null for anything else
    private readonly Dictionary<string, string?> _entries = new(StringComparer.Ordinal);

    public int Count => _entries.Count;

    /// <summary>Media types this scanner can read (zstd needs a decompressor the BCL lacks).</summary>
    public static bool CanScan(string mediaType) => mediaType is MediaTypes.Layer or MediaTypes.LayerGzip or MediaTypes.DockerLayer or MediaTypes.DockerLayerGzip;

    /// <summary>Adds one layer on top of the previous ones.</summary>
    public void AddLayer(Stream raw, string mediaType)
    {
        Stream tarStream = mediaType switch
        {
            MediaTypes.Layer or MediaTypes.DockerLayer => raw,
            MediaTypes.LayerGzip or MediaTypes.DockerLayerGzip => new GZipStream(raw, CompressionMode.Decompress, leaveOpen: true),
            _ => throw new NotSupportedException($"cannot read layers of media type {mediaType}"),
        };
        var added = new List<(string Path, string? Link)>();
        var whiteouts = new List<string>();
        var opaque = new List<string>();
        using (var reader = new TarReader(tarStream, leaveOpen: true))
        {
            while (NextEntry(reader) is { } entry)
            {
                var path = Normalize(entry.Name);
                if (path.Length == 0)
                {
                    continue;
                }
                var name = path[(path.LastIndexOf('/') + 1)..];
                var parent = path.Contains('/') ? path[..path.LastIndexOf('/')] : string.Empty;
                if (name == OpaqueMarker)
                {
                    opaque.Add(parent);
                }
                else if (name.StartsWith(WhiteoutPrefix, StringComparison.Ordinal))
                {
                    whiteouts.Add(parent.Length == 0 ? name[WhiteoutPrefix.Length..] : parent + "/" + name[WhiteoutPrefix.Length..]);
                }
                else
                {
                    added.Add((path, entry.EntryType == TarEntryType.SymbolicLink ? entry.LinkName : null));
                }
            }
        }
        if (!ReferenceEquals(tarStream, raw))
        {
            tarStream.Dispose();
        }
        foreach (var dir in opaque)
        {
            RemoveChildren(dir);
        }
        foreach (var w in whiteouts)
        {
            _entries.Remove(w);
            RemoveChildren(w);
        }
        foreach (var (path, link) in added)
        {
            // parents a layer did not list still exist for it (tar entries imply their directories)
            for (int i = path.IndexOf('/'); i > 0; i = path.IndexOf('/', i + 1))
            {
                _entries.TryAdd(path[..i], null);
            }
            _entries[path] = link;
        }
    }

    /// <summary>The next entry; a layer that just stops without end-of-archive blocks (umoci writes such) ends there.</summary>
    private static TarEntry? NextEntry(TarReader reader)
    {
        try
        {
            return reader.GetNextEntry(copyData: false);
        }
        catch (EndOfStreamException)
        {
            return null;
        }
    }

    /// <summary>True if the path exists, following symlinks (also in parent directories).</summary>
    public bool Exists(string path) => Resolve(path) is { } p && (p.Length == 0 || _entries.ContainsKey(p));

    /// <summary>The path with every symlink resolved, or null if a component is missing or links loop.</summary>
    public string? Resolve(string path)
    {
        var result = SymlinkWalk.Resolve(Normalize(path), ReadLink, SymlinkScope.Posix);
        return result.Status == SymlinkWalkStatus.Resolved ? result.Path : null;
    }

    private bool ReadLink(string path, out string? target) => _entries.TryGetValue(path, out target);

    private void RemoveChildren(string dir)
    {
        var prefix = dir.Length == 0 ? string.Empty : dir + "/";
        foreach (var key in _entries.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal) && k != dir).ToList())
        {
            _entries.Remove(key);
        }
    }

    private static string Normalize(string name)
    {
        var s = name.Replace('\\', '/');
        while (s.StartsWith("./", StringComparison.Ordinal))
        {
            s = s[2..];
        }
        s = s.TrimStart('/').TrimEnd('/');
        return s == "." ? string.Empty : s;
    }
}
