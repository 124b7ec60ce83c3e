using System.Text.Json;
using ModelCar.TestSupport;

namespace ModelCar.OciPack.Tests;

/// <summary>
/// Issue 21 item 12: the config's history entries pair one to one with the non-empty layers (what
/// <c>podman history</c> shows), for a base with history, one without, and one with empty_layer entries.
/// The published binary packs; skopeo reads the config back.
/// </summary>
public sealed class HistoryPairingTests : IDisposable
{
    private readonly TempDir _dir = new("oci-pack-history");

    public void Dispose() => _dir.Dispose();

    private string Model()
    {
        var model = _dir.Combine("model");
        if (!Directory.Exists(model))
        {
            _dir.WriteFile("model/config.json", "{}");
            _dir.WriteFile("model/a.safetensors", TempDir.RandomBytes((1 << 20) + 100, 21));
            _dir.WriteFile("model/b.safetensors", TempDir.RandomBytes((1 << 20) + 200, 22));
        }
        return model;
    }

    private async Task<(JsonElement Config, int Layers)> PackAsync(string name, string historyJson)
    {
        var baseDir = _dir.Combine("base-" + name);
        Directory.CreateDirectory(baseDir);
        TestBases.WriteLayout(baseDir, "1", TestBases.BusyboxLayer(), historyJson: historyJson);
        var output = _dir.Combine("out-" + name);
        var r = await ToolRunner.RunAsync("oci-pack", ["--model", Model(), "--base", $"oci:{baseDir}:1", "--layer-threshold", "1M",
            "--state-dir", _dir.Combine("state-" + name), "--output", $"oci:{output}:v1"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        var config = await PeerTools.RunAsync("skopeo", ["inspect", "--config", $"oci:{output}:v1"]);
        Assert.True(config.ExitCode == 0, config.ToString());
        var raw = await PeerTools.RunAsync("skopeo", ["inspect", "--raw", $"oci:{output}:v1"]);
        Assert.True(raw.ExitCode == 0, raw.ToString());
        using var manifest = JsonDocument.Parse(raw.StdOut);
        return (JsonDocument.Parse(config.StdOut).RootElement.Clone(), manifest.RootElement.GetProperty("layers").GetArrayLength());
    }

    private static List<string> NonEmptyCreatedBy(JsonElement config) =>
        config.GetProperty("history").EnumerateArray()
            .Where(h => !(h.TryGetProperty("empty_layer", out var e) && e.GetBoolean()))
            .Select(h => h.TryGetProperty("created_by", out var c) ? c.GetString() ?? "" : "").ToList();

    [Theory]
    [InlineData("with", TestBases.DefaultHistory)]
    [InlineData("without", "")]
    [InlineData("empty", "[]")]
    [InlineData("env", """[{"created_by":"ENV A=1","empty_layer":true},{"created_by":"test busybox"},{"created_by":"CMD [\"sh\"]","empty_layer":true}]""")]
    public async Task Non_empty_history_entries_pair_one_to_one_with_the_layers(string name, string historyJson)
    {
        var (config, layers) = await PackAsync(name, historyJson);
        Assert.Equal(4, layers); // busybox + small files + 2 big files
        Assert.Equal(layers, config.GetProperty("rootfs").GetProperty("diff_ids").GetArrayLength());
        var nonEmpty = NonEmptyCreatedBy(config);
        Assert.Equal(layers, nonEmpty.Count);
        // the base layer's entry comes first; each model layer's entry names that layer, in order
        Assert.Equal(historyJson.Contains("test busybox", StringComparison.Ordinal) ? "test busybox" : "oci-pack: base layer (the base image records no history for it)", nonEmpty[0]);
        Assert.Equal(["oci-pack: add /models", "oci-pack: add /models/a.safetensors", "oci-pack: add /models/b.safetensors"], nonEmpty[1..]);
        // the base's empty_layer entries are kept as they were
        int emptyBefore = historyJson.Length == 0 ? 0 : JsonDocument.Parse(historyJson).RootElement.EnumerateArray()
            .Count(h => h.TryGetProperty("empty_layer", out var e) && e.GetBoolean());
        Assert.Equal(emptyBefore, config.GetProperty("history").GetArrayLength() - nonEmpty.Count);
    }
}
