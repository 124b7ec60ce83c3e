using System.Text.Json;
using ModelCar.OciPack.Tests;
using ModelCar.TestSupport;

namespace ModelCar.Pipeline.Tests;

/// <summary>
/// The builder image (images/Containerfile) builds with podman offline (scripts/build-image.sh:
/// the published binaries on a base assembled from this host's glibc + OpenSSL), stays small, runs
/// as UID 1001, and each binary works inside it — including one real oci-pack run.
/// </summary>
public class BuilderImageTests
{
    private const string Tag = "localhost/modelcar-tools:test";

    private static async Task<ToolResult> Sh(string program, params string[] args)
    {
        var psi = new System.Diagnostics.ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = RepoPaths.Root };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }
        using var p = System.Diagnostics.Process.Start(psi)!;
        var o = p.StandardOutput.ReadToEndAsync();
        var e = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync();
        return new ToolResult(p.ExitCode, await o, await e);
    }

    [Fact]
    public async Task Image_builds_offline_and_every_tool_runs_in_it()
    {
        var build = await Sh(Path.Combine(RepoPaths.Root, "scripts", "build-image.sh"), Tag);
        Assert.True(build.ExitCode == 0, build.ToString());

        var inspect = await Sh("podman", "image", "inspect", Tag);
        Assert.True(inspect.ExitCode == 0, inspect.ToString());
        using var doc = JsonDocument.Parse(inspect.StdOut);
        var img = doc.RootElement[0];
        Assert.True(img.GetProperty("Size").GetInt64() < 80L * 1000 * 1000, $"image is {img.GetProperty("Size").GetInt64()} bytes");
        Assert.Equal("1001", img.GetProperty("Config").GetProperty("User").GetString());
        Assert.Equal("modelcar-tools", img.GetProperty("Config").GetProperty("Labels").GetProperty("org.opencontainers.image.title").GetString());

        foreach (var tool in new[] { "hf-fetch", "oci-pack", "registry-push", "mr-register" })
        {
            var v = await Sh("podman", "run", "--rm", "--network=none", Tag, $"/usr/local/bin/{tool}", "--version");
            Assert.True(v.ExitCode == 0, $"{tool}: {v}");
            Assert.Matches(@"^\d+\.\d+\.\d+", v.StdOut.Trim());
        }

        // one real command inside the image, as UID 1001, on mounted folders
        using var tmp = new TempDir("mc-image");
        var model = tmp.WriteFile("model/config.json", "{\"model_type\":\"mistral\"}");
        tmp.WriteFile("model/model.safetensors", TempDir.RandomBytes(1 << 20, 7));
        var baseDigest = TestBases.WriteLayout(tmp.Combine("base"), "latest", TestBases.BusyboxLayer());
        Directory.CreateDirectory(tmp.Combine("out"));
        File.SetUnixFileMode(tmp.Combine("out"), (UnixFileMode)0b111_111_111);
        var pack = await Sh("podman", "run", "--rm", "--network=none",
            "-v", $"{tmp.Combine("model")}:/in/model:ro", "-v", $"{tmp.Combine("base")}:/in/base:ro", "-v", $"{tmp.Combine("out")}:/out",
            Tag, "/usr/local/bin/oci-pack", "--model", "/in/model", "--base", "oci:/in/base:latest", "--output", "oci:/out/image:v1", "--results-dir", "/out/results");
        Assert.True(pack.ExitCode == 0, pack.ToString());
        var digest = pack.StdOut.Trim();
        Assert.Equal(digest, File.ReadAllText(tmp.Combine("out", "results", "IMAGE_DIGEST")));
        var skopeo = await PeerTools.RunAsync("skopeo", ["inspect", $"oci:{tmp.Combine("out", "image")}:v1"]);
        Assert.True(skopeo.ExitCode == 0, skopeo.ToString());
        Assert.Contains(digest, skopeo.StdOut);

        // the same inputs packed by the host binary give the same digest (reproducible across environments)
        var host = await ToolRunner.RunAsync("oci-pack", "--model", tmp.Combine("model"), "--base", $"oci:{tmp.Combine("base")}:latest", "--output", $"oci:{tmp.Combine("host-image")}:v1");
        Assert.True(host.ExitCode == 0, host.ToString());
        Assert.Equal(digest, host.StdOut.Trim());
        Assert.StartsWith("sha256:", baseDigest);
    }
}
