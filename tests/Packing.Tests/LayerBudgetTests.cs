using ModelCar.Common;
using ModelCar.Oci.Tar;
using ModelCar.Packing;
using ModelCar.TestSupport;

namespace ModelCar.Packing.Tests;

/// <summary>
/// Issue 20 behaviour 1, the plan: files at or above the threshold are grouped only when they would exceed the model's
/// layer budget; then the largest stay alone, groups are balanced and never over the blob limit, and the grouping
/// depends only on paths and sizes.
/// </summary>
public sealed class LayerBudgetTests : IDisposable
{
    private readonly TempDir _dir = new("oci-pack-budget");

    public void Dispose() => _dir.Dispose();

    private static PackSettings Settings(int? maxModelLayers, long? maxLayerBytes = null) =>
        TestPackSettings.Create() with { MaxModelLayers = maxModelLayers, MaxLayerBytes = maxLayerBytes };

    /// <summary>A model of <paramref name="sizes"/> (file NAME-i.bin of that size, sparse) plus config.json (small).</summary>
    private ModelTree Model(string name, IReadOnlyList<long> sizes, bool reversedCreation = false)
    {
        var dir = _dir.Combine(name);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), "{}");
        var order = Enumerable.Range(0, sizes.Count);
        foreach (var i in reversedCreation ? order.Reverse() : order)
        {
            using var f = File.Create(Path.Combine(dir, $"shard-{i:D4}.bin"));
            f.SetLength(sizes[i]);
        }
        return ModelTree.Scan(dir, PathFilter.Create([], []));
    }

    private static string[] Files(LayerPlan plan) => [.. plan.Entries.Where(e => e.Kind == LayerEntryKind.File).Select(e => e.TarPath)];

    private static void AssertEveryFileOnce(ModelTree tree, IReadOnlyList<LayerPlan> plans)
    {
        var packed = plans.SelectMany(Files).ToList();
        Assert.Equal(packed.Count, packed.Distinct().Count());
        Assert.Equal(tree.Entries.Select(e => "models/" + e.RelativePath).Order(StringComparer.Ordinal), packed.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Within_the_budget_the_plan_is_exactly_the_ungrouped_one()
    {
        var tree = Model("ten", [.. Enumerable.Range(0, 10).Select(i => 5000L + i)]);
        var today = Packer.Plan(tree, Settings(null));
        foreach (var budget in new[] { 126, 11 })
        {
            var planned = Packer.Plan(tree, Settings(budget));
            Assert.Equal(today.Select(p => (p.Title, p.Key, p.TarSize)), planned.Select(p => (p.Title, p.Key, p.TarSize)));
        }
        Assert.Equal(11, today.Count);
    }

    [Fact]
    public void Over_the_budget_equal_files_pair_up_to_exactly_the_budget()
    {
        var tree = Model("two-hundred", [.. Enumerable.Repeat(4096L, 200)]);
        var plans = Packer.Plan(tree, Settings(126));
        Assert.Equal(126, plans.Count);
        Assert.Equal(["models/config.json"], Files(plans[0]));
        var sizes = plans.Skip(1).Select(p => Files(p).Length).ToList();
        Assert.Equal(75, sizes.Count(n => n == 2)); // 200 files in 125 layers: 75 pairs and 50 alone
        Assert.Equal(50, sizes.Count(n => n == 1));
        AssertEveryFileOnce(tree, plans);
        // a one-file layer is titled with its path (as today); a group says it is one, with its count and first paths; ordered by first path
        Assert.All(plans.Skip(1), p => Assert.Equal(Files(p).Length == 1
            ? "/" + Files(p)[0]
            : $"/models (group of 2 files: {Files(p)[0]["models/".Length..]}, {Files(p)[1]["models/".Length..]})", p.Title));
        var firsts = plans.Skip(1).Select(p => Files(p)[0]).ToList();
        Assert.Equal(firsts.Order(StringComparer.Ordinal), firsts);
    }

    [Fact]
    public void The_largest_files_stay_alone_as_long_as_the_budget_allows()
    {
        // 5 big (1 MB .. 5 MB) and 20 smaller (10 kB .. 29 kB) files in 10 layers (1 for config.json): the 5 big ones alone
        var sizes = Enumerable.Range(1, 5).Select(i => i * 1_000_000L).Concat(Enumerable.Range(0, 20).Select(i => 10_000L + (i * 1000))).ToList();
        var tree = Model("mixed", sizes);
        var plans = Packer.Plan(tree, Settings(10));
        Assert.Equal(10, plans.Count);
        AssertEveryFileOnce(tree, plans);
        for (int i = 0; i < 5; i++)
        {
            var alone = Assert.Single(plans, p => Files(p).Contains($"models/shard-{i:D4}.bin"));
            Assert.Equal([$"models/shard-{i:D4}.bin"], Files(alone));
            Assert.Equal($"/models/shard-{i:D4}.bin", alone.Title);
        }
        // the 20 smaller files share the 4 other layers, balanced: no group more than twice another's bytes
        var groups = plans.Skip(1).Where(p => Files(p).Length > 1).Select(p => p.ModelBytes).ToList();
        Assert.Equal(4, groups.Count);
        Assert.True(groups.Max() <= 2 * groups.Min(), string.Join(", ", groups));
    }

    [Fact]
    public void Same_paths_and_sizes_give_the_same_groups_and_layer_bytes_wherever_and_however_the_files_were_made()
    {
        var sizes = Enumerable.Range(0, 40).Select(i => 2000L + (i % 7 * 300)).ToList(); // many equal sizes: ties broken by path
        var a = Packer.Plan(Model("a", sizes), Settings(12));
        var b = Packer.Plan(Model("elsewhere/b", sizes, reversedCreation: true), Settings(12));
        Assert.Equal(12, a.Count);
        Assert.Equal(a.Select(p => (p.Title, string.Join(",", Files(p)), p.TarSize)), b.Select(p => (p.Title, string.Join(",", Files(p)), p.TarSize)));
        var attrs = new LayerEntryAttributes { Uid = 0, Gid = 0, ModificationTime = DateTimeOffset.UnixEpoch };
        Assert.Equal(a.Select(p => Digest(p, attrs)), b.Select(p => Digest(p, attrs)));
    }

    private static string Digest(LayerPlan plan, LayerEntryAttributes attrs)
    {
        using var ms = new MemoryStream();
        using (var s = new TarLayer(plan.Entries, attrs).OpenAt(0))
        {
            s.CopyTo(ms);
        }
        return Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(ms.ToArray()));
    }

    [Fact]
    public void A_group_never_exceeds_the_blob_limit_and_a_budget_that_cannot_hold_the_files_under_it_fails()
    {
        var tree = Model("capped", [.. Enumerable.Repeat(10_000L, 30)]);
        var single = Packer.Plan(tree, Settings(null))[1].TarSize;
        // room for three files per layer, not four: 30 files in 10 layers of 3
        long cap = (3 * single) + 2048;
        var plans = Packer.Plan(tree, Settings(11, cap));
        Assert.Equal(11, plans.Count);
        Assert.All(plans.Skip(1), p => Assert.True(p.TarSize <= cap, $"{p.TarSize} > {cap}"));
        AssertEveryFileOnce(tree, plans);
        // without the limit the same budget would merge freely; with room for only 2 per layer, 30 files cannot fit in 10
        var e = Assert.Throws<PackingException>(() => Packer.Plan(tree, Settings(11, (2 * single) + 2048)));
        Assert.Equal(PackingReason.LayerBudget, e.Reason);
        Assert.Contains("30 files", e.Message);
        // one file alone over the limit: not a grouping failure (the command refuses that file by name, as before)
        var over = Packer.Plan(tree, Settings(11, single - 1));
        Assert.Equal(11, over.Count);
    }

    [Fact]
    public void A_budget_of_one_layer_puts_the_whole_model_in_it()
    {
        var tree = Model("one", [5000, 6000]);
        var plan = Assert.Single(Packer.Plan(tree, Settings(1)));
        Assert.StartsWith("/models (group of 3 files: ", plan.Title);
        Assert.EndsWith(", … 1 more)", plan.Title);
        AssertEveryFileOnce(tree, [plan]);
    }
}
