using System.Formats.Tar;
using System.Text;
using ModelCar.Oci;
using ModelCar.Oci.Archive;
using ModelCar.TestSupport;

namespace ModelCar.Oci.Tests;

public sealed class OciArchiveReaderTests
{
    [Theory]
    [InlineData(TarEntryFormat.Gnu)]
    [InlineData(TarEntryFormat.Pax)]
    [InlineData(TarEntryFormat.Ustar)]
    public void Reads_layout_blobs_in_place_for_each_tar_format(TarEntryFormat format)
    {
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(1, 3000, 70_000, 1));
        var tar = TestImages.WriteArchive(image.LayoutPath, tmp.Combine("image.tar"), format, namePrefix: "./");

        using var reader = OciArchiveReader.Open(tar);
        var root = reader.ResolveRoot("v1");
        Assert.Equal(image.ManifestDigest, root.Digest.ToString());
        var manifest = OciJson.Deserialize(reader.ReadSmallBlob(root), OciJson.Manifest, "manifest");
        Assert.Equal(3, manifest.Layers.Count);
        foreach (var (layer, expected) in manifest.Layers.Zip(image.Layers))
        {
            using var s = reader.OpenVerified(layer);
            var ms = new MemoryStream();
            s.CopyTo(ms);
            Assert.Equal(expected.Content, ms.ToArray());
        }
        Assert.Throws<ReferenceNotFoundException>(() => reader.ResolveRoot("v2"));
    }

    [Fact]
    public void Gnu_long_names_pax_path_and_size_and_base256_sizes_are_understood()
    {
        using var tmp = new TempDir();
        var longDir = "blobs/" + new string('d', 120) + "/";
        var a = Encoding.ASCII.GetBytes("first entry data");
        var b = TempDir.RandomBytes(1500, 7);
        var c = Encoding.ASCII.GetBytes("pax-sized");
        var tar = new MemoryStream();
        // GNU 'L' long name
        var longName = Encoding.UTF8.GetBytes(longDir + "a\0");
        RawTar.Entry(tar, "././@LongLink", longName, (byte)'L');
        RawTar.Entry(tar, "truncated-name", a, (byte)'0');
        // base-256 size field
        RawTar.Entry(tar, "b", b, (byte)'0', base256Size: true);
        // PAX header overriding path and size (the ustar size field says 0)
        var pax = RawTar.PaxRecords(("path", longDir + "c"), ("size", c.Length.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        RawTar.Entry(tar, "PaxHeaders/c", pax, (byte)'x');
        RawTar.Entry(tar, "c-short", c, (byte)'0', sizeFieldOverride: 0);
        tar.Write(new byte[1024]);
        var path = tmp.WriteFile("t.tar", tar.ToArray());

        using var handle = File.OpenHandle(path);
        var entries = OciArchiveReader.Scan(handle, path);
        Assert.Equal(a, ReadAt(path, entries[longDir + "a"]));
        Assert.Equal(b, ReadAt(path, entries["b"]));
        Assert.Equal(c, ReadAt(path, entries[longDir + "c"]));
        Assert.Equal(3, entries.Count);
    }

    [Fact]
    public void Missing_blob_and_non_archive_fail_clearly()
    {
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), null, TestImages.RandomLayers(2, 100));
        File.Delete(Path.Combine(image.LayoutPath, "blobs", "sha256", image.Layers[0].Digest["sha256:".Length..]));
        var tar = TestImages.WriteArchive(image.LayoutPath, tmp.Combine("image.tar"));
        using (var reader = OciArchiveReader.Open(tar))
        {
            var layer = new Descriptor { MediaType = TestImages.LayerType, Digest = Digest.Parse(image.Layers[0].Digest), Size = 100 };
            var e = Assert.Throws<BlobNotFoundException>(() => reader.OpenBlob(layer));
            Assert.Contains(image.Layers[0].Digest, e.Message);
        }
        var junk = tmp.WriteFile("junk.tar", TempDir.RandomBytes(4096, 3));
        var ex = Assert.Throws<InvalidDataException>(() => OciArchiveReader.Open(junk));
        Assert.Contains("not a valid tar file", ex.Message);
    }

    private static byte[] ReadAt(string path, TarEntryLocation loc)
    {
        using var fs = File.OpenRead(path);
        fs.Position = loc.Offset;
        var buffer = new byte[loc.Size];
        fs.ReadExactly(buffer);
        return buffer;
    }
}

/// <summary>Hand-built tar blocks, to exercise header variants TarWriter does not emit for small files.</summary>
internal static class RawTar
{
    public static void Entry(Stream tar, string name, byte[] data, byte type, bool base256Size = false, long? sizeFieldOverride = null)
    {
        var h = new byte[512];
        Encoding.ASCII.GetBytes(name).CopyTo(h, 0);
        Octal(h, 100, 8, 420);
        Octal(h, 108, 8, 0);
        Octal(h, 116, 8, 0);
        long sizeField = sizeFieldOverride ?? data.Length;
        if (base256Size)
        {
            h[124] = 0x80;
            for (int i = 0; i < 8; i++)
            {
                h[135 - i] = (byte)(sizeField >> (8 * i));
            }
        }
        else
        {
            Octal(h, 124, 12, sizeField);
        }
        Octal(h, 136, 12, 0);
        h[156] = type;
        Encoding.ASCII.GetBytes("ustar  \0").CopyTo(h, 257);
        for (int i = 148; i < 156; i++)
        {
            h[i] = (byte)' ';
        }
        long sum = h.Sum(x => (long)x);
        Octal(h, 148, 7, sum);
        tar.Write(h);
        tar.Write(data);
        tar.Write(new byte[(512 - data.Length % 512) % 512]);
    }

    public static byte[] PaxRecords(params (string Key, string Value)[] records)
    {
        var sb = new StringBuilder();
        foreach (var (k, v) in records)
        {
            var body = $" {k}={v}\n";
            int len = body.Length + 1;
            while ((len.ToString(System.Globalization.CultureInfo.InvariantCulture) + body).Length != len)
            {
                len++;
            }
            sb.Append(len.ToString(System.Globalization.CultureInfo.InvariantCulture)).Append(body);
        }
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    private static void Octal(byte[] h, int offset, int width, long value)
    {
        var s = Convert.ToString(value, 8).PadLeft(width - 1, '0');
        Encoding.ASCII.GetBytes(s).CopyTo(h, offset);
        h[offset + width - 1] = 0;
    }
}
