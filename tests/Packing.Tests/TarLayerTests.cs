using System.Formats.Tar;
using ModelCar.Oci.Tar;
using ModelCar.Packing;
using ModelCar.TestSupport;

namespace ModelCar.Packing.Tests;

/// <summary>The virtual tar layer: byte-identical to a TarWriter of the same entries, re-readable from any offset, checked sources.</summary>
public sealed class TarLayerTests : IDisposable
{
    private static readonly LayerEntryAttributes Attrs = new() { Uid = 0, Gid = 0, ModificationTime = DateTimeOffset.FromUnixTimeSeconds(1700000000) };
    private readonly TempDir _dir = new("tar-layer");

    public void Dispose() => _dir.Dispose();

    /// <summary>The reference: .NET's TarWriter fed the real files (what LayerWriter did before the virtual layer).</summary>
    private static byte[] TarWriterReference(IReadOnlyList<LayerEntry> entries)
    {
        using var ms = new MemoryStream();
        using (var writer = new TarWriter(ms, TarEntryFormat.Gnu, leaveOpen: true))
        {
            foreach (var e in entries)
            {
                var (type, name, mode) = e.Kind switch
                {
                    LayerEntryKind.Directory => (TarEntryType.Directory, e.TarPath + "/", Attrs.DirectoryMode),
                    LayerEntryKind.File => (TarEntryType.RegularFile, e.TarPath, Attrs.FileMode),
                    _ => (TarEntryType.SymbolicLink, e.TarPath, (UnixFileMode)0b111_111_111),
                };
                var t = new GnuTarEntry(type, name)
                {
                    Uid = Attrs.Uid,
                    Gid = Attrs.Gid,
                    Mode = mode,
                    ModificationTime = Attrs.ModificationTime,
                    AccessTime = default,
                    ChangeTime = default,
                    UserName = string.Empty,
                    GroupName = string.Empty,
                };
                if (e.Kind == LayerEntryKind.Symlink)
                {
                    t.LinkName = e.LinkTarget!;
                }
                using var data = e.Kind == LayerEntryKind.File ? File.OpenRead(e.SourcePath!) : null;
                if (data is not null)
                {
                    t.DataStream = data;
                }
                writer.WriteEntry(t);
            }
        }
        return ms.ToArray();
    }

    private IReadOnlyList<LayerPlan> VariedTree()
    {
        var longDir = string.Join('/', Enumerable.Range(0, 6).Select(i => new string((char)('a' + i), 30)));
        _dir.WriteFile("model/empty.txt", string.Empty);
        _dir.WriteFile("model/one.bin", TempDir.RandomBytes(1, 1));
        _dir.WriteFile("model/b511.bin", TempDir.RandomBytes(511, 2));
        _dir.WriteFile("model/b512.bin", TempDir.RandomBytes(512, 3));
        _dir.WriteFile("model/b513.bin", TempDir.RandomBytes(513, 4));
        _dir.WriteFile($"model/{longDir}/{new string('n', 120)}.safetensors", TempDir.RandomBytes(70_000, 5));
        _dir.WriteFile("model/ünïcødé/名前.json", "{\"x\":1}");
        _dir.WriteFile("model/big.bin", TempDir.RandomBytes(3 << 20, 6));
        File.CreateSymbolicLink(_dir.Combine("model", "link"), "one.bin");
        File.CreateSymbolicLink(_dir.Combine("model", "longlink"), longDir + "/" + new string('n', 120) + ".safetensors");
        var tree = ModelTree.Scan(_dir.Combine("model"), PathFilter.Create([], []));
        var settings = new PackSettings { ModelsPath = "/models", Uid = 0, Gid = 0, User = "1001", LayerThreshold = 1 << 20, Created = Attrs.ModificationTime };
        var plans = Packer.Plan(tree, settings);
        Assert.Equal(2, plans.Count);
        return plans;
    }

    [Fact]
    public void Virtual_layer_is_byte_identical_to_TarWriter_on_varied_trees()
    {
        foreach (var plan in VariedTree())
        {
            var reference = TarWriterReference(plan.Entries);
            var layer = new TarLayer(plan.Entries, Attrs);
            Assert.Equal(reference.Length, layer.Size);
            Assert.Equal(plan.TarSize, layer.Size);
            using var ms = new MemoryStream();
            using (var s = layer.OpenAt(0))
            {
                s.CopyTo(ms, 4096);
            }
            Assert.Equal(reference, ms.ToArray());
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(511)]
    [InlineData(777)]
    [InlineData(1 << 20)]
    public void File_hasher_fed_the_layer_stream_in_any_chunks_gives_each_files_sha256(int chunk)
    {
        foreach (var plan in VariedTree())
        {
            var layer = new TarLayer(plan.Entries, Attrs);
            var files = plan.Entries.Where(e => e.Kind == LayerEntryKind.File).ToList();
            Assert.Equal(files.Select(f => f.TarPath), layer.Files.Select(f => f.Entry.TarPath));
            var seen = new List<string>();
            using var hasher = new LayerFileHasher(layer, (e, _) => seen.Add(e.TarPath));
            using var s = layer.OpenAt(0);
            var buffer = new byte[chunk];
            int n;
            while ((n = s.Read(buffer)) > 0)
            {
                hasher.Append(buffer.AsSpan(0, n));
            }
            Assert.Equal(files.Select(f => f.TarPath), seen);
            Assert.Equal(
                files.ToDictionary(f => f.TarPath, f => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(f.SourcePath!)))),
                hasher.Result);
        }
    }

    [Fact]
    public void OpenAt_any_offset_gives_the_suffix()
    {
        var plan = VariedTree()[0];
        var layer = new TarLayer(plan.Entries, Attrs);
        var all = TarWriterReference(plan.Entries);
        var offsets = new HashSet<long> { 0, 1, 511, 512, 513, 1023, 1024, layer.Size - 1024, layer.Size - 1, layer.Size };
        var random = new Random(7);
        for (int i = 0; i < 60; i++)
        {
            offsets.Add(random.NextInt64(layer.Size + 1));
        }
        foreach (var k in offsets)
        {
            using var s = layer.OpenAt(k);
            using var ms = new MemoryStream();
            var buffer = new byte[777]; // odd reads cross segment boundaries
            int n;
            while ((n = s.Read(buffer)) > 0)
            {
                ms.Write(buffer, 0, n);
            }
            Assert.True(all.AsSpan((int)k).SequenceEqual(ms.ToArray()), $"suffix from offset {k} differs");
        }
    }

    [Fact]
    public void Big_file_header_is_base256_like_TarWriter_without_reading_data()
    {
        // 9 GiB: past ustar's 8 GiB octal limit; the header comes from TarWriter without copying the data
        var entry = new LayerEntry("models/huge.bin", LayerEntryKind.File, "/nonexistent", 9L << 30);
        var header = TarLayer.HeaderOf(entry, Attrs);
        Assert.Equal(512, header.Length);
        Assert.Equal(0x80, header[124]);
        Assert.Equal(9L << 30, System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(header.AsSpan(128, 8)));
        Assert.Equal(512 + (9L << 30) + 1024, new TarLayer([entry], Attrs).Size);
    }

    [Fact]
    public void A_file_that_changes_size_or_mtime_or_ends_early_fails_with_SourceChangedException()
    {
        var plan = VariedTree()[1]; // big.bin alone
        var path = _dir.Combine("model", "big.bin");
        var layer = new TarLayer(plan.Entries, Attrs);

        // mtime changed (same size)
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddMinutes(-5));
        var e1 = Assert.Throws<SourceChangedException>(() => layer.OpenAt(0).CopyTo(Stream.Null));
        Assert.Contains("big.bin", e1.Message);
        Assert.Contains("modified", e1.Message);

        // changed while read: size grows after the first bytes were read
        var rescanned = new TarLayer(VariedTreeAgain(), Attrs);
        using (var s = rescanned.OpenAt(0))
        {
            var buffer = new byte[1 << 20];
            s.ReadExactly(buffer);
            using (var f = new FileStream(path, FileMode.Append))
            {
                f.Write(new byte[10]);
            }
            var e2 = Assert.Throws<SourceChangedException>(() => s.CopyTo(Stream.Null));
            Assert.Contains("bytes after reading", e2.Message);
        }

        // truncated while read: the read ends early
        var again = new TarLayer(VariedTreeAgain(), Attrs);
        using (var s = again.OpenAt(0))
        {
            var buffer = new byte[1 << 20];
            s.ReadExactly(buffer);
            using (var f = new FileStream(path, FileMode.Open))
            {
                f.SetLength(1 << 20);
            }
            var e3 = Assert.Throws<SourceChangedException>(() => s.CopyTo(Stream.Null));
            Assert.Contains("ended after", e3.Message);
        }
    }

    private IReadOnlyList<LayerEntry> VariedTreeAgain()
    {
        var tree = ModelTree.Scan(_dir.Combine("model"), PathFilter.Create([], []));
        var settings = new PackSettings { ModelsPath = "/models", Uid = 0, Gid = 0, User = "1001", LayerThreshold = 1 << 20, Created = Attrs.ModificationTime };
        return Packer.Plan(tree, settings)[1].Entries;
    }
}
