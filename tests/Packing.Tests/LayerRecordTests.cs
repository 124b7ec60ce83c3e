using Microsoft.Extensions.Logging.Abstractions;
using ModelCar.Oci;
using ModelCar.Packing;
using ModelCar.TestSupport;

namespace ModelCar.Packing.Tests;

/// <summary>The re-run record: layer keys follow file identity and pack options; the record round-trips and is only a cache.</summary>
public sealed class LayerRecordTests : IDisposable
{
    private readonly TempDir _dir = new("layer-record");

    public void Dispose() => _dir.Dispose();

    private IReadOnlyList<LayerPlan> Plan(int uid = 0, DateTimeOffset? created = null)
    {
        var tree = ModelTree.Scan(_dir.Combine("model"), PathFilter.Create([], []));
        var settings = new PackSettings { ModelsPath = "/models", Uid = uid, Gid = 0, User = "1001", LayerThreshold = 1000, Created = created ?? DateTimeOffset.UnixEpoch };
        return Packer.Plan(tree, settings);
    }

    [Fact]
    public void Keys_are_stable_and_change_with_the_file_identity_and_the_options()
    {
        _dir.WriteFile("model/a.json", "{}");
        _dir.WriteFile("model/big1.bin", new byte[5000]);
        _dir.WriteFile("model/big2.bin", new byte[6000]);
        var first = Plan().Select(p => p.Key).ToList();
        Assert.Equal(3, first.Distinct().Count());
        Assert.Equal(first, Plan().Select(p => p.Key));

        Assert.All(Plan(uid: 1000).Select(p => p.Key), k => Assert.DoesNotContain(k, first));
        Assert.All(Plan(created: DateTimeOffset.FromUnixTimeSeconds(1700000000)).Select(p => p.Key), k => Assert.DoesNotContain(k, first));

        File.SetLastWriteTimeUtc(_dir.Combine("model", "big1.bin"), DateTime.UtcNow.AddHours(-1));
        var touched = Plan().Select(p => p.Key).ToList();
        Assert.Equal(first[0], touched[0]);
        Assert.NotEqual(first[1], touched[1]);
        Assert.Equal(first[2], touched[2]);

        // same name, same size, same mtime, another inode (replaced by a rename, as downloaders do)
        var path = _dir.Combine("model", "big2.bin");
        var mtime = File.GetLastWriteTimeUtc(path);
        var replacement = _dir.WriteFile("big2.bin.new", new byte[6000]); // exists beside the old file: another inode
        File.SetLastWriteTimeUtc(replacement, mtime);
        File.Move(replacement, path, overwrite: true);
        Assert.Equal(mtime, File.GetLastWriteTimeUtc(path));
        Assert.NotEqual(touched[2], Plan()[2].Key);
    }

    [Fact]
    public void Record_round_trips_and_an_unreadable_one_is_empty()
    {
        var path = _dir.Combine("state", LayerDigestRecord.FileName);
        var record = LayerDigestRecord.Open(path, NullLogger.Instance);
        Assert.Null(record.Get("k1"));
        var digest = Digest.Sha256("x"u8);
        var files = new Dictionary<string, string> { ["models/a.bin"] = new string('c', 64), ["models/b.json"] = new string('d', 64) };
        record.Set("k1", digest, files);
        record.Save();
        var read = LayerDigestRecord.Open(path, NullLogger.Instance).Get("k1");
        Assert.Equal(digest, read?.Digest);
        Assert.Equal(files, read?.Files);

        // a version 1 record (digests without file hashes) is not trusted: those layers are read once more
        File.WriteAllText(path, $$$"""{"version":1,"layers":{"k1":"{{{digest}}}"}}""");
        Assert.Null(LayerDigestRecord.Open(path, NullLogger.Instance).Get("k1"));

        File.WriteAllText(path, "{not json");
        Assert.Null(LayerDigestRecord.Open(path, NullLogger.Instance).Get("k1"));
        Assert.Equal(Path.Combine(_dir.Path, "m", ".oci-pack", "layers.json"), LayerDigestRecord.PathFor(Path.Combine(_dir.Path, "m"), null));
    }

    [Fact]
    public void The_record_folder_is_never_packed()
    {
        _dir.WriteFile("model/a.json", "{}");
        _dir.WriteFile("model/.oci-pack/layers.json", "{}");
        var tree = ModelTree.Scan(_dir.Combine("model"), PathFilter.Create([], []));
        Assert.Equal(["a.json"], tree.Entries.Select(e => e.RelativePath));
    }
}
