using ModelCar.Packing;
using ModelCar.Common.IO;
using ModelCar.TestSupport;

namespace ModelCar.OciPack.Tests;

/// <summary>Issue 11: the quay layer-size warning, IMAGE_URL next to IMAGE_DIGEST, named auth files.</summary>
public sealed class QuayLimitAndResultsTests : IDisposable
{
    private readonly TempDir _dir = new("oci-pack-quay");

    public void Dispose() => _dir.Dispose();

    private static PackSettings Settings => TestPackSettings.Create(PackJob.DefaultLayerThreshold);

    [Fact]
    public void Layers_over_quays_default_20G_are_found_from_the_plan_without_reading_the_files()
    {
        var model = _dir.Combine("model");
        Directory.CreateDirectory(model);
        _dir.WriteFile("model/config.json", "{}");
        using (var f = File.Create(Path.Combine(model, "consolidated.safetensors")))
        {
            f.SetLength(Packer.QuayDefaultMaxLayerBytes); // sparse; its tar is a little bigger than the limit
        }
        using (var f = File.Create(Path.Combine(model, "model-00001-of-00002.safetensors")))
        {
            f.SetLength(Packer.QuayDefaultMaxLayerBytes - (1 << 20));
        }
        var plans = Packer.Plan(ModelTree.Scan(model, PathFilter.Create([], [])), Settings);
        Assert.Equal(["/models/consolidated.safetensors"], Packer.OverQuayDefaultLimit(plans).Select(p => p.Title));
    }

    [Fact]
    public async Task Image_url_result_is_the_output_pinned_by_digest_and_a_named_missing_authfile_fails()
    {
        var baseDir = _dir.Combine("base");
        Directory.CreateDirectory(baseDir);
        TestBases.WriteLayout(baseDir, "1", TestBases.BusyboxLayer(), gzip: false);
        _dir.WriteFile("model/config.json", "{}");
        var output = _dir.Combine("image");
        var results = _dir.Combine("results");
        Directory.CreateDirectory(results);
        // as an arbitrary UID without HOME (restricted-v2): reads the model and base, writes only the output and results
        using var sandbox = new ArbitraryUid();
        ArbitraryUid.AllowRead(_dir.Combine("model"));
        ArbitraryUid.AllowRead(baseDir);
        ArbitraryUid.AllowWrite(output);
        ArbitraryUid.AllowWrite(results);
        var r = await sandbox.RunAsync("oci-pack", ["--model", _dir.Combine("model"), "--base", $"oci:{baseDir}:1", "--output", $"oci:{output}:v1", "--results-dir", results]);
        Assert.True(r.ExitCode == 0, r.ToString());
        sandbox.AssertNothingWritten();
        var digest = File.ReadAllText(Path.Combine(results, "IMAGE_DIGEST"));
        Assert.Equal(r.StdOut.Trim(), digest);
        Assert.Equal($"oci:{output}@{digest}", File.ReadAllText(Path.Combine(results, "IMAGE_URL")));

        var missing = _dir.Combine("secret", ".dockercfg");
        var bad = await ToolRunner.RunAsync("oci-pack", "--model", _dir.Combine("model"), "--base", $"oci:{baseDir}:1", "--output", $"oci:{_dir.Combine("other")}", "--authfile", missing);
        Assert.Equal(1, bad.ExitCode);
        Assert.Equal($"oci-pack: error: auth file '{missing}' does not exist", bad.StdErr.Trim().Split('\n')[^1]);
        Assert.False(Directory.Exists(_dir.Combine("other")));
    }
}
