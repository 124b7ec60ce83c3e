using ModelCar.Packing;
using System.Formats.Tar;
using System.Text;
using ModelCar.Oci.Archive;
using ModelCar.Oci.Tar;
using ModelCar.TestSupport;

namespace ModelCar.Packing.Tests;

public class LayerWriterTests
{
    private static readonly LayerEntryAttributes Attrs = new() { Uid = 1234, Gid = 0, ModificationTime = DateTimeOffset.FromUnixTimeSeconds(1700000000) };

    private static (IReadOnlyList<LayerPlan> Plans, TempDir Dir) PlanFor(Action<TempDir> fill, long threshold = 1000)
    {
        var dir = new TempDir("pack-unit");
        fill(dir);
        var tree = ModelTree.Scan(dir.Path, PathFilter.Create([], []));
        var settings = new PackSettings { ModelsPath = "/models", Uid = 1234, Gid = 0, User = "1001", LayerThreshold = threshold, Created = Attrs.ModificationTime };
        return (Packer.Plan(tree, settings), dir);
    }

    private static byte[] Write(LayerPlan plan)
    {
        using var ms = new MemoryStream();
        using (var s = new TarLayer(plan.Entries, Attrs).OpenAt(0))
        {
            s.CopyTo(ms);
        }
        return ms.ToArray();
    }

    [Fact]
    public void Layers_are_gnu_with_parents_sorted_fixed_modes_owner_and_time_and_no_names()
    {
        var (plans, dir) = PlanFor(d =>
        {
            d.WriteFile("b.json", "{}");
            d.WriteFile("a/z.txt", "z");
            d.WriteFile("a/b/c.txt", "c");
            d.WriteFile("big.bin", new byte[5000]);
            File.CreateSymbolicLink(d.Combine("a", "link"), "z.txt");
            File.SetUnixFileMode(d.Combine("b.json"), UnixFileMode.UserRead | UnixFileMode.UserWrite); // 0600 on disk
        });
        using var _ = dir;
        Assert.Equal(["/models", "/models/big.bin"], plans.Select(p => p.Title));

        var small = Write(plans[0]);
        Assert.Equal(plans[0].TarSize, small.Length);
        var entries = ReadAll(small);
        Assert.Equal(["models/", "models/a/", "models/a/b/", "models/a/b/c.txt", "models/a/link", "models/a/z.txt", "models/b.json"], entries.Select(e => e.Name));
        foreach (var e in entries)
        {
            Assert.Equal(TarEntryFormat.Gnu, e.Format);
            Assert.Equal(1234, e.Uid);
            Assert.Equal(0, e.Gid);
            Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1700000000), e.ModificationTime);
            var expected = e.EntryType switch
            {
                TarEntryType.Directory => "755",
                TarEntryType.RegularFile => "644",
                TarEntryType.SymbolicLink => "777",
                _ => "?",
            };
            Assert.Equal(expected, Convert.ToString((int)e.Mode, 8));
        }
        Assert.Equal("z.txt", entries.Single(e => e.Name == "models/a/link").LinkName);

        // raw header bytes: GNU magic, empty uname/gname, no atime/ctime
        for (int off = 0; off + 512 <= small.Length; off += 512)
        {
            if (small.AsSpan(off, 512).IndexOfAnyExcept((byte)0) < 0)
            {
                continue;
            }
            var magic = Encoding.ASCII.GetString(small, off + 257, 8);
            if (magic != "ustar  \0")
            {
                continue; // data block
            }
            Assert.True(small.AsSpan(off + 265, 64).IndexOfAnyExcept((byte)0) < 0, "uname/gname must be empty");
            Assert.True(small.AsSpan(off + 345, 24).IndexOfAnyExcept((byte)0) < 0, "atime/ctime must be empty: " + Encoding.ASCII.GetString(small, off + 345, 24));
        }

        var big = ReadAll(Write(plans[1]));
        Assert.Equal(["models/", "models/big.bin"], big.Select(e => e.Name));
        Assert.Equal(5000, big[1].Length);
    }

    [Fact]
    public void Predicted_size_matches_for_long_names_and_odd_sizes()
    {
        var longName = string.Join('/', Enumerable.Repeat("a-rather-long-directory-name", 5)) + "/file.bin";
        var (plans, dir) = PlanFor(d =>
        {
            d.WriteFile(longName, new byte[513]);
            d.WriteFile("one.bin", new byte[1]);
            d.WriteFile("empty", []);
        }, threshold: 1 << 20);
        using var _ = dir;
        var bytes = Write(plans.Single());
        Assert.Equal(plans[0].TarSize, bytes.Length);
        Assert.Contains(ReadAll(bytes), e => e.Name == "models/" + longName && e.Length == 513);
    }

    [Fact]
    public void OpenShift_sized_uid_round_trips()
    {
        var (plans, dir) = PlanFor(d => d.WriteFile("a.txt", "x"));
        using var _ = dir;
        using var ms = new MemoryStream();
        using (var s = new TarLayer(plans[0].Entries, Attrs with { Uid = 1000680000, Gid = 0 }).OpenAt(0))
        {
            s.CopyTo(ms);
        }
        Assert.Equal(plans[0].TarSize, ms.Length);
        Assert.All(ReadAll(ms.ToArray()), e => Assert.Equal(1000680000, e.Uid));
    }

    [Fact]
    public void Same_input_same_bytes()
    {
        var (plans, dir) = PlanFor(d => d.WriteFile("x/y.txt", "hello"));
        using var _ = dir;
        var first = Write(plans[0]);
        File.SetLastWriteTimeUtc(dir.Combine("x", "y.txt"), DateTime.UtcNow.AddDays(-3));
        // the plan carries the scanned mtime (reading checks it), so scan again: the host mtime is not in the bytes
        var tree = ModelTree.Scan(dir.Path, PathFilter.Create([], []));
        var settings = new PackSettings { ModelsPath = "/models", Uid = 1234, Gid = 0, User = "1001", LayerThreshold = 1000, Created = Attrs.ModificationTime };
        Assert.Equal(first, Write(Packer.Plan(tree, settings)[0]));
    }

    [Fact]
    public void Archive_header_uses_base256_size_from_8_GiB()
    {
        long nine = 9L << 30;
        var header = OciArchiveWriter.BuildHeader("blobs/sha256/" + new string('a', 64), nine, isDirectory: false, mtime: 0);
        Assert.Equal(0x80, header[124]);
        Assert.Equal("ustar  \0", Encoding.ASCII.GetString(header, 257, 8));
        long decoded = 0;
        for (int i = 125; i < 136; i++)
        {
            decoded = (decoded << 8) | header[i];
        }
        Assert.Equal(nine, decoded);
        // a tar reader accepts our header (checksum, GNU magic): an entry with 3 bytes of data
        var three = OciArchiveWriter.BuildHeader("blobs/sha256/" + new string('b', 64), 3, isDirectory: false, mtime: 1700000000);
        using var ms = new MemoryStream([.. three, (byte)'a', (byte)'b', (byte)'c', .. new byte[509 + 1024]]);
        using var reader = new TarReader(ms);
        var entry = reader.GetNextEntry(copyData: true)!;
        Assert.Equal(3, entry.Length);
        Assert.Equal(TarEntryFormat.Gnu, entry.Format);
        Assert.Equal("644", Convert.ToString((int)entry.Mode, 8));
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1700000000), entry.ModificationTime);

        var small = OciArchiveWriter.BuildHeader("x", 8L * 1024 * 1024 * 1024 - 1, isDirectory: false, mtime: 0);
        Assert.Equal((byte)'7', small[124]);
    }

    [Fact]
    public void Archive_writer_without_commit_leaves_nothing()
    {
        using var dir = new TempDir("pack-unit");
        var path = dir.Combine("out.tar");
        string temp;
        using (var w = new OciArchiveWriter(path, DateTimeOffset.UnixEpoch))
        {
            temp = w.TempPath;
            w.AddBlob("{}"u8.ToArray(), "application/json");
            Assert.True(File.Exists(temp));
        }
        Assert.False(File.Exists(temp));
        Assert.False(File.Exists(path));
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));
    }

    [Fact]
    public async Task Archive_write_failure_is_reported_and_cleans_up()
    {
        // injected failure: the layer's source file vanishes between planning and writing
        var (plans, dir) = PlanFor(d => d.WriteFile("gone.bin", new byte[10]));
        using var _ = dir;
        using var outDir = new TempDir("pack-unit");
        var path = outDir.Combine("out.tar");
        File.Delete(dir.Combine("gone.bin"));
        await using (var outputs = new ImageOutputs([new ArchiveTarget(new OciArchiveWriter(path, DateTimeOffset.UnixEpoch), path, null)], null, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance))
        {
            var ex = await Assert.ThrowsAnyAsync<Exception>(() => outputs.WriteLayersAsync(plans, Attrs, 2, _ => { }, CancellationToken.None));
            Assert.Contains("gone.bin", ex.Message);
        }
        Assert.Empty(Directory.GetFileSystemEntries(outDir.Path));
    }

    private static List<TarEntry> ReadAll(byte[] tar)
    {
        var list = new List<TarEntry>();
        using var reader = new TarReader(new MemoryStream(tar));
        while (reader.GetNextEntry(copyData: true) is { } e)
        {
            list.Add(e);
        }
        return list;
    }
}
