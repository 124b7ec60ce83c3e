using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using ModelCar.Oci.Tar;

namespace ModelCar.Packing;

/// <summary>
/// A model layer to write: its tar entries and its exact size (known before any data is read).
/// <see cref="Key"/> names the layer's inputs — every entry with its source file's identity (path,
/// size, mtime, inode) and the attributes stamped on it — so an unchanged re-run finds the layer's
/// digest in the <see cref="LayerDigestRecord"/> without reading the file.
/// </summary>
public sealed record LayerPlan(string Title, IReadOnlyList<LayerEntry> Entries, long ModelBytes, long TarSize)
{
    public string Key { get; init; } = string.Empty;

    /// <summary>
    /// Version of the layer format in the key: bump it when the bytes generated for the same inputs
    /// change (tar writer, header fields), so old records are not trusted.
    /// </summary>
    public const string KeyFormat = "oci-pack layer v1";

    public static string KeyOf(IReadOnlyList<LayerEntry> entries, IReadOnlyDictionary<string, ulong> inodes, LayerEntryAttributes a)
    {
        var text = new StringBuilder();
        text.Append(KeyFormat).Append('\n');
        text.Append(CultureInfo.InvariantCulture, $"attrs {a.Uid} {a.Gid} {a.ModificationTime.ToUnixTimeSeconds()} {(int)a.FileMode} {(int)a.DirectoryMode}\n");
        foreach (var e in entries)
        {
            text.Append(CultureInfo.InvariantCulture, $"{e.Kind}\t{e.TarPath}\t{e.Size}\t{e.LinkTarget}\t{e.SourcePath}\t{e.ModifiedUtc?.Ticks}\t{(e.SourcePath is { } p ? inodes.GetValueOrDefault(p) : 0)}\n");
        }
        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }
}
