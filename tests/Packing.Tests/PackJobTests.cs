using System.Security.Cryptography;
using Microsoft.Extensions.Logging.Abstractions;
using ModelCar.Common.Http;
using ModelCar.Oci;
using ModelCar.Oci.Layout;
using ModelCar.TestSupport;

namespace ModelCar.Packing.Tests;

/// <summary>
/// What oci-pack's action did, now <see cref="PackJob"/>, without a binary: the layer budget, the dry run's plan, the size
/// check before any read, the base checks' typed reasons, the outputs, and the symlink resolution of the model signature.
/// </summary>
public sealed class PackJobTests : IDisposable
{
    private readonly TempDir _dir = new("pack-job");

    public void Dispose() => _dir.Dispose();

    private static PackSettings Settings => TestPackSettings.Create();

    private string Model(string name)
    {
        var dir = _dir.Combine(name);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), "{}");
        File.WriteAllBytes(Path.Combine(dir, "weights.bin"), RandomNumberGenerator.GetBytes(5000));
        return dir;
    }

    private string BusyboxBase()
    {
        var dir = _dir.Combine("base");
        if (!Directory.Exists(dir))
        {
            TestBases.WriteLayout(dir, "1", TestBases.BusyboxLayer());
        }
        return dir;
    }

    private PackRequest Request(string model, params string[] outputs) => new()
    {
        Model = PackModel.Parse(model),
        Base = ImageLocation.Parse($"oci:{BusyboxBase()}:1"),
        Outputs = PackOutputs.Parse(outputs),
        Settings = Settings,
        Http = new HttpSettings(),
    };

    private static Dictionary<string, string> Sha256Of(ModelTree tree) => tree.Entries.Where(e => e.Kind == ModelEntryKind.File)
        .ToDictionary(e => e.FullPath, e => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(e.FullPath))));

    [Fact]
    public void The_layer_budget_leaves_what_the_largest_base_does_not_use()
    {
        var three = _dir.Combine("three");
        TestImages.WriteLayout(three, "t", TestImages.RandomLayers(1, 100, 200, 300));
        using var layout = OciLayout.Open(three);
        var base3 = BaseImage.Load(layout, "t", null, NullLogger.Instance);
        var scratch = BaseImage.Scratch(PlatformSpec.Default);

        Assert.Equal(127, PackJob.ModelLayerBudget(PackJob.DefaultMaxLayers, [scratch]));
        Assert.Equal(7, PackJob.ModelLayerBudget(10, [scratch, base3]));
        Assert.Equal(1, PackJob.ModelLayerBudget(4, [base3]));
        var e = Assert.Throws<BaseOverLayerBudgetException>(() => PackJob.ModelLayerBudget(3, [base3]));
        Assert.Equal((3, 3), (e.BaseLayers, e.MaxLayers));
        Assert.Contains("has 3 layers, but the layer budget of 3 leaves room for at most 2", e.Message);
        Assert.DoesNotContain("--", e.Message); // the command names --max-layers
    }

    [Fact]
    public async Task A_dry_run_returns_the_plan_and_writes_nothing()
    {
        var model = Model("dry");
        var layout = _dir.Combine("out", "layout");
        var archive = _dir.Combine("out", "image.tar");
        var hookCalled = false;
        var result = await PackJob.RunAsync(Request(model, $"oci:{layout}:v1", $"oci-archive:{archive}") with
        {
            DryRun = true,
            AfterCommit = (_, _) => { hookCalled = true; return Task.CompletedTask; },
        }, NullLogger.Instance, CancellationToken.None);

        var plan = Assert.IsType<PackPlan>(result.Plan);
        Assert.Null(result.Image);
        Assert.Empty(plan.Problems);
        var text = plan.Render();
        Assert.Contains("weights.bin", text);
        Assert.Contains("the real run would start", text);
        Assert.False(hookCalled);
        Assert.False(Directory.Exists(_dir.Combine("out")));
        Assert.False(Directory.Exists(Path.Combine(model, LayerDigestRecord.DirectoryName)));
    }

    [Fact]
    public async Task A_pack_returns_the_pinned_outputs_and_calls_the_hook_after_the_commit()
    {
        var model = Model("real");
        var layout = _dir.Combine("layout");
        var archive = _dir.Combine("image.tar");
        PackedImage? seen = null;
        var request = Request(model, $"oci:{layout}:v1", $"oci-archive:{archive}:v1") with
        {
            AfterCommit = (image, _) =>
            {
                Assert.True(File.Exists(Path.Combine(layout, "index.json"))); // committed before the hook
                Assert.True(File.Exists(archive));
                seen = image;
                return Task.CompletedTask;
            },
        };
        var result = await PackJob.RunAsync(request, NullLogger.Instance, CancellationToken.None);

        var digest = result.Image!.Manifest.Digest;
        Assert.Equal([digest.ToString(), digest.ToString()], result.OutputReferences);
        Assert.Equal($"oci:{layout}@{digest}", result.ImageUrl);
        Assert.Equal(PackJob.ImageUrlOf(ImageLocation.Parse($"oci-archive:{archive}:v1"), digest), $"oci-archive:{archive}@{digest}");
        Assert.Null(result.HfCommit);
        Assert.NotNull(seen);
        Assert.Equal("real", seen!.ModelName);
        Assert.Empty(seen.Registries);
        Assert.Equal(Sha256Of(seen.Tree), seen.FileSha256.Where(kv => kv.Key.StartsWith(model, StringComparison.Ordinal)).ToDictionary());

        // the same input, the same digest (and the layer record says nothing was read again)
        var again = await PackJob.RunAsync(request with { AfterCommit = null }, NullLogger.Instance, CancellationToken.None);
        Assert.Equal(digest, again.Image!.Manifest.Digest);
    }

    [Fact]
    public async Task A_blob_over_the_limit_fails_before_any_output_is_made()
    {
        var model = Model("big");
        File.WriteAllBytes(Path.Combine(model, "weights.bin"), RandomNumberGenerator.GetBytes(TestBases.BusyboxLayer().Length + 10_000));
        var limit = TestBases.BusyboxLayer().Length + 1000L; // the base layer fits, the model's weights do not
        var layout = _dir.Combine("never");
        var e = await Assert.ThrowsAsync<BlobOverLimitException>(() => PackJob.RunAsync(Request(model, $"oci:{layout}") with { MaxBlobSize = limit },
            NullLogger.Instance, CancellationToken.None));
        Assert.Equal("/models/weights.bin", e.LayerTitle);
        Assert.Null(e.Blob);
        Assert.Equal(limit, e.Limit);
        Assert.True(e.Size > limit);
        Assert.Contains("over the maximum blob size", e.Message);
        Assert.False(Directory.Exists(layout));

        // a base layer over it: named by its descriptor (the command words it as registry-push does)
        var baseBlob = await Assert.ThrowsAsync<BlobOverLimitException>(() => PackJob.RunAsync(Request(model, $"oci:{layout}") with { MaxBlobSize = 100 },
            NullLogger.Instance, CancellationToken.None));
        Assert.Equal(TestBases.Sha(TestBases.BusyboxLayer()), baseBlob.Blob!.Digest.ToString());
        Assert.Null(baseBlob.LayerTitle);
        Assert.False(Directory.Exists(layout));
    }

    [Fact]
    public async Task A_base_without_sh_is_refused_with_a_typed_reason_unless_allowed()
    {
        var model = Model("scratch");
        var request = Request(model, $"oci:{_dir.Combine("s")}") with { Base = ImageLocation.Parse("scratch") };
        var e = await Assert.ThrowsAsync<PackingException>(() => PackJob.RunAsync(request, NullLogger.Instance, CancellationToken.None));
        Assert.Equal(PackingReason.BaseWithoutShell, e.Reason);
        Assert.Contains("has no /bin/sh", e.Message);

        var allowed = await PackJob.RunAsync(request with { AllowNoShell = true }, NullLogger.Instance, CancellationToken.None);
        Assert.NotNull(allowed.Image);
    }

    [Fact]
    public void Outputs_are_parsed_once_each_and_take_no_digest()
    {
        var parsed = PackOutputs.Parse(["oci:/tmp/a:v1", "oci-archive:/tmp/b.tar", "docker://reg.example/org/m:v1"]);
        Assert.IsType<OciLayoutLocation>(parsed[0]);
        Assert.IsType<OciArchiveLocation>(parsed[1]);
        Assert.IsType<RegistryLocation>(parsed[2]);
        Assert.Equal("oci:/tmp/../tmp/a:v2", Assert.Throws<SameOutputTwiceException>(() => PackOutputs.Parse(["oci:/tmp/a:v1", "oci:/tmp/../tmp/a:v2"])).Text);
        Assert.Throws<FormatException>(() => PackOutputs.Parse(["oci:"]));
        Assert.Contains("takes a tag, not a digest", Assert.Throws<PackingInputException>(() => PackOutputs.Parse(["docker://reg.example/m@sha256:" + new string('a', 64)])).Message);
        Assert.Contains("use oci:DIR", Assert.Throws<PackingInputException>(() => PackOutputs.Parse(["scratch"])).Message);
    }

    [Fact]
    public void EntryDigests_follow_a_symlink_chain_to_its_file()
    {
        var dir = _dir.Combine("links");
        Directory.CreateDirectory(Path.Combine(dir, "sub", "deeper"));
        File.WriteAllBytes(Path.Combine(dir, "weights.bin"), RandomNumberGenerator.GetBytes(100));
        File.WriteAllBytes(Path.Combine(dir, "sub", "deeper", "other.bin"), RandomNumberGenerator.GetBytes(100));
        File.CreateSymbolicLink(Path.Combine(dir, "link1"), "weights.bin");
        File.CreateSymbolicLink(Path.Combine(dir, "sub", "link2"), "../link1");            // a chain: sub/link2 -> link1 -> weights.bin
        File.CreateSymbolicLink(Path.Combine(dir, "sub", "link3"), "./deeper/../link2");   // . and .. inside the tree, then the chain
        File.CreateSymbolicLink(Path.Combine(dir, "zlink"), "sub/deeper/other.bin");
        var tree = ModelTree.Scan(dir, PathFilter.Create([], []));
        var sha = Sha256Of(tree);
        var weights = sha[Path.Combine(dir, "weights.bin")];

        var digests = tree.EntryDigests(sha).ToList();
        Assert.Equal(["link1", "sub/deeper/other.bin", "sub/link2", "sub/link3", "weights.bin", "zlink"], digests.Select(d => d.Path));
        Assert.All(new[] { "link1", "sub/link2", "sub/link3", "weights.bin" }, p => Assert.Equal(weights, digests.Single(d => d.Path == p).Sha256Hex));
        Assert.Equal(sha[Path.Combine(dir, "sub", "deeper", "other.bin")], digests.Single(d => d.Path == "zlink").Sha256Hex);
    }

    [Fact]
    public void EntryDigests_refuse_a_link_to_a_directory()
    {
        var dir = _dir.Combine("dirlink");
        Directory.CreateDirectory(Path.Combine(dir, "sub"));
        File.WriteAllBytes(Path.Combine(dir, "sub", "in.bin"), [1]);
        Directory.CreateSymbolicLink(Path.Combine(dir, "dirlink"), "sub");
        var tree = ModelTree.Scan(dir, PathFilter.Create([], []));
        // model_signing hashes files: a link to a directory cannot be signed the same way
        var e = Assert.Throws<PackingException>(() => tree.EntryDigests(Sha256Of(tree)).ToList());
        Assert.Equal("symlink dirlink does not lead to a packed file (sub): model_signing could not hash it the same way", e.Message);
    }

    [Fact]
    public void EntryDigests_refuse_a_link_to_a_file_left_out_and_a_file_without_a_hash()
    {
        var dir = _dir.Combine("leftout");
        Directory.CreateDirectory(dir);
        File.WriteAllBytes(Path.Combine(dir, "a.bin"), [1, 2, 3]);
        File.WriteAllBytes(Path.Combine(dir, "b.bin"), [4]);
        File.CreateSymbolicLink(Path.Combine(dir, "link"), "a.bin");
        var tree = ModelTree.Scan(dir, PathFilter.Create([], ["a.bin"]));
        var e = Assert.Throws<PackingException>(() => tree.EntryDigests(Sha256Of(tree)).ToList());
        Assert.Contains("symlink link does not lead to a packed file (a.bin)", e.Message);

        var all = ModelTree.Scan(dir, PathFilter.Create([], []));
        var missing = Assert.Throws<PackingException>(() => all.EntryDigests(new Dictionary<string, string>()).ToList());
        Assert.Contains("no sha256 was taken for a.bin", missing.Message);
    }

    [Theory]
    [InlineData("../outside.bin")]          // straight out
    [InlineData("sub/../../outside.bin")]   // out through ..
    [InlineData("dirlink/../../outside.bin")] // out through a linked directory: dirlink/.. is the root, as the kernel resolves it
    [InlineData("loop")]                    // a loop never ends
    public void A_symlink_that_escapes_the_tree_never_gets_a_digest(string target)
    {
        var dir = _dir.Combine("escape");
        Directory.CreateDirectory(Path.Combine(dir, "sub"));
        File.WriteAllBytes(_dir.Combine("outside.bin"), [9]);
        File.WriteAllBytes(Path.Combine(dir, "sub", "in.bin"), [1]);
        Directory.CreateSymbolicLink(Path.Combine(dir, "dirlink"), "sub");
        if (target == "loop")
        {
            File.CreateSymbolicLink(Path.Combine(dir, "loop"), "loop2");
            File.CreateSymbolicLink(Path.Combine(dir, "loop2"), "loop");
        }
        File.CreateSymbolicLink(Path.Combine(dir, "esc"), target);
        // the tree refuses it before any digest is asked for (and without it, the tree scans)
        var e = Assert.Throws<PackingException>(() => ModelTree.Scan(dir, PathFilter.Create([], [])));
        Assert.Contains(target == "loop" ? "-> 'loop" : "symlink '" + Path.Combine(dir, "esc") + "'", e.Message);
        Assert.Contains("points outside the model directory", e.Message);
        File.Delete(Path.Combine(dir, "esc"));
        if (target != "loop")
        {
            Assert.Equal(["dirlink", "sub/in.bin"], ModelTree.Scan(dir, PathFilter.Create([], [])).Entries.Select(x => x.RelativePath));
        }
    }
}
