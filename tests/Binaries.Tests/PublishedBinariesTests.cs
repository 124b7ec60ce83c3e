using ModelCar.TestSupport;

namespace ModelCar.Binaries.Tests;

/// <summary>The published Native-AOT binaries start, print help and version, and reject bad usage with 2.</summary>
public class PublishedBinariesTests
{
    public static TheoryData<string> Tools => new() { "hf-fetch", "oci-pack", "registry-push", "mr-register" };

    [Theory]
    [MemberData(nameof(Tools))]
    public async Task Help_and_version_work(string tool)
    {
        var help = await ToolRunner.RunAsync(tool, "--help");
        Assert.True(help.ExitCode == 0, help.ToString());
        Assert.Contains("--results-dir", help.StdOut);
        Assert.Contains("--log-format", help.StdOut);
        var version = await ToolRunner.RunAsync(tool, "--version");
        Assert.True(version.ExitCode == 0, version.ToString());
        Assert.Matches(@"^\d+\.\d+\.\d+", version.StdOut.Trim());
    }

    [Theory]
    [MemberData(nameof(Tools))]
    public async Task Unknown_option_exits_2(string tool)
    {
        var r = await ToolRunner.RunAsync(tool, "--definitely-not-an-option");
        Assert.Equal(2, r.ExitCode);
        Assert.Contains($"{tool}: error:", r.StdErr);
    }
}
