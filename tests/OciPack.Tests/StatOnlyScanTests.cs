using System.Security.Cryptography;
using ModelCar.Oci.Tar;
using ModelCar.TestSupport;

namespace ModelCar.OciPack.Tests;

/// <summary>
/// The model scan stats, it does not open: an unchanged re-run whose layers all come from the layer record
/// needs no read permission on the model files; a file that will be read is still checked before anything is
/// written. And the per-file hasher skips the bytes of files whose sha256 is known.
/// </summary>
public sealed class StatOnlyScanTests : IDisposable
{
    private readonly TempDir _dir = new("oci-pack-stat");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task A_rerun_from_the_layer_record_packs_a_model_whose_files_cannot_be_read()
    {
        // tests run as root, which reads a 0000 file anyway: run the tool as nobody (setpriv)
        _dir.WriteFile("model/config.json", "{}");
        _dir.WriteFile("model/weights.bin", TempDir.RandomBytes(2 << 20, 17));
        var model = _dir.Combine("model");
        var writable = _dir.Combine("writable");
        Directory.CreateDirectory(writable);
        File.SetUnixFileMode(writable, (UnixFileMode)0b111_111_111);
        File.SetUnixFileMode(_dir.Path, (UnixFileMode)0b111_101_101);
        var baseDir = _dir.Combine("base");
        TestBases.WriteLayout(baseDir, "1", TestBases.BusyboxLayer());
        string[] Pack(string output) => ["--reuid=65534", "--regid=65534", "--clear-groups", ToolRunner.PathOf("oci-pack"),
            "--model", model, "--base", $"oci:{baseDir}:1", "--output", output, "--layer-threshold", "1M", "--state-dir", $"{writable}/state"];
        var pack = Pack($"oci:{writable}/out:v1");
        var first = await PeerTools.RunAsync("setpriv", pack);
        Assert.True(first.ExitCode == 0, first.ToString());

        foreach (var f in new[] { "config.json", "weights.bin" })
        {
            File.SetUnixFileMode(Path.Combine(model, f), UnixFileMode.None); // chmod only: the identity (size, mtime, inode) stays
        }
        var again = await PeerTools.RunAsync("setpriv", pack);
        Assert.True(again.ExitCode == 0, again.ToString());
        Assert.Equal(first.StdOut.Trim(), again.StdOut.Trim());
        Assert.Contains("2 known from the layer record", again.StdErr);

        // a file that must be read (its layer is not in the record any more) is refused before anything is written
        File.SetLastWriteTimeUtc(Path.Combine(model, "weights.bin"), DateTime.UtcNow.AddMinutes(-5));
        var changed = await PeerTools.RunAsync("setpriv", Pack($"oci-archive:{writable}/m.tar"));
        Assert.Equal(1, changed.ExitCode);
        var error = Assert.Single(changed.StdErr.Split('\n'), l => l.StartsWith("oci-pack: error:", StringComparison.Ordinal));
        Assert.Contains("cannot read model file", error);
        Assert.Contains("weights.bin", error);
        Assert.False(File.Exists($"{writable}/m.tar"));
        Assert.Empty(Directory.GetFiles(writable, "m.tar*"));
    }

    [Fact]
    public void The_file_hasher_skips_the_bytes_of_files_whose_sha256_is_known()
    {
        var a = _dir.WriteFile("a.bin", TempDir.RandomBytes(700_001, 1));
        var b = _dir.WriteFile("b.bin", TempDir.RandomBytes(3000, 2));
        var attrs = new LayerEntryAttributes { Uid = 0, Gid = 0, ModificationTime = DateTimeOffset.UnixEpoch };
        var layer = new TarLayer([
            new LayerEntry("m", LayerEntryKind.Directory),
            new LayerEntry("m/a.bin", LayerEntryKind.File, a, new FileInfo(a).Length),
            new LayerEntry("m/b.bin", LayerEntryKind.File, b, new FileInfo(b).Length)], attrs);
        const string Known = "0000000000000000000000000000000000000000000000000000000000000001";
        Func<LayerEntry, string?> known = e => e.TarPath == "m/a.bin" ? Known : null;
        Assert.True(LayerFileHasher.NeedsBytes(layer, known));
        Assert.False(LayerFileHasher.NeedsBytes(layer, _ => Known));

        var hashed = new List<string>();
        using var hasher = new LayerFileHasher(layer, (e, _) => hashed.Add(e.TarPath), known);
        using (var s = layer.OpenAt(0))
        {
            var buffer = new byte[65_536];
            int n;
            while ((n = s.Read(buffer)) > 0)
            {
                hasher.Append(buffer.AsSpan(0, n));
            }
        }
        Assert.Equal(Known, hasher.Result["m/a.bin"]); // taken as given, not the file's hash
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(b))), hasher.Result["m/b.bin"]);
        Assert.Equal(["m/b.bin"], hashed);
        Assert.Equal(Known, LayerFileHasher.KnownOnly(layer, _ => Known)["m/b.bin"]);
    }
}
