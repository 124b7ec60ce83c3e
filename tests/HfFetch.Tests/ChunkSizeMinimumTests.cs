using ModelCar.Common.Cli;
using ModelCar.TestSupport;

namespace ModelCar.HfFetch.Tests;

/// <summary>
/// --chunk-size below 1 MiB (issue 21 item 8: <c>--chunk-size 1</c> made every tool run for ever, one request per
/// byte) is bad usage in every tool that takes it: exit 2, one line naming the minimum, before any request. The
/// PUBLISHED binaries; the three tools share the option (ModelCar.Common.Cli.CommonOptions.ChunkSize).
/// </summary>
public sealed class ChunkSizeMinimumTests : IDisposable
{
    private readonly TempDir _dir = new("chunk-min");

    public void Dispose() => _dir.Dispose();

    private string[] ArgsFor(string tool) => tool switch
    {
        // everything else valid, pointing at nothing that answers: a parse error must come first
        "hf-fetch" => ["org/model", "--dest", _dir.Combine("dest"), "--endpoint", "http://127.0.0.1:9"],
        "oci-pack" => ["--model", _dir.Path, "--base", "scratch", "--allow-no-shell", "--output", $"oci:{_dir.Combine("layout")}:v1"],
        "registry-push" => ["--source", $"oci:{_dir.Combine("layout")}:v1", "--dest", "docker://127.0.0.1:9/m/m:1"],
        _ => throw new ArgumentException(tool),
    };

    [Theory]
    [InlineData("hf-fetch", "1")]
    [InlineData("hf-fetch", "1048575")]
    [InlineData("oci-pack", "1")]
    [InlineData("oci-pack", "512K")]
    [InlineData("registry-push", "1")]
    [InlineData("registry-push", "1023K")]
    public async Task A_chunk_size_below_1M_is_exit_2_with_one_line(string tool, string size)
    {
        var r = await ToolRunner.RunAsync(tool, [.. ArgsFor(tool), "--chunk-size", size], new Dictionary<string, string?> { ["HF_HOME"] = _dir.Combine("home") }, TimeSpan.FromMinutes(1));
        Assert.True(r.ExitCode == 2, r.ToString());
        var errors = r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => l.StartsWith($"{tool}: error: ", StringComparison.Ordinal)).ToList();
        var line = Assert.Single(errors);
        Assert.Contains($"--chunk-size must be at least 1M ({CommonOptions.MinChunkSize} bytes)", line);
        Assert.False(Directory.Exists(_dir.Combine("dest")));
        Assert.False(Directory.Exists(_dir.Combine("layout")));
    }

    [Fact]
    public async Task A_chunk_size_of_exactly_1M_passes_the_check()
    {
        // gets past parsing: fails later (nothing listens on port 9), not on --chunk-size
        var r = await ToolRunner.RunAsync("hf-fetch", [.. ArgsFor("hf-fetch"), "--chunk-size", "1M", "--retries", "0"],
            new Dictionary<string, string?> { ["HF_HOME"] = _dir.Combine("home") }, TimeSpan.FromMinutes(1));
        Assert.Equal(1, r.ExitCode);
        Assert.DoesNotContain("--chunk-size", r.StdErr);
    }
}
