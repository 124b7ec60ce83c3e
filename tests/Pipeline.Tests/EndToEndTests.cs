using ModelCar.Packing;
using System.Text;
using System.Text.Json;
using ModelCar.TestSupport;

namespace ModelCar.Pipeline.Tests;

/// <summary>
/// The whole pipeline on the published Native-AOT binaries: fake Hub → hf-fetch → oci-pack (busybox
/// base) → registry-push to two real registry containers at once (one with htpasswd auth) →
/// mr-register against the fake Model Registry. skopeo judges both registries; the unpacked
/// /models must equal the source byte for byte. A second run must re-download, re-upload and
/// re-register nothing.
/// </summary>
public class EndToEndTests
{
    private const string RepoId = "modelcar-e2e/tiny-model";

    [Fact]
    public async Task Pipeline_runs_end_to_end_and_a_rerun_does_nothing_twice()
    {
        using var tmp = new TempDir("mc-e2e");
        await using var hub = new FakeHub();
        var repo = hub.AddRepo(RepoId);
        var source = new Dictionary<string, byte[]>
        {
            ["config.json"] = Encoding.UTF8.GetBytes("{\"model_type\":\"mistral\",\"hidden_size\":64}"),
            ["tokenizer_config.json"] = Encoding.UTF8.GetBytes("{\"model_max_length\":512}"),
            ["model-00001-of-00002.safetensors"] = TempDir.RandomBytes(3 << 20, 1),
            ["model-00002-of-00002.safetensors"] = TempDir.RandomBytes((2 << 20) + 17, 2),
            ["nested/dir/notes.txt"] = Encoding.UTF8.GetBytes("weights for tests only\n"),
        };
        foreach (var (path, bytes) in source)
        {
            repo.Add(path, bytes, lfs: bytes.Length > 1 << 20);
        }

        var password = "e2e-" + Guid.NewGuid().ToString("N");
        var htpasswd = await PeerTools.RunAsync("htpasswd", ["-Bbn", "pusher", password]);
        Assert.Equal(0, htpasswd.ExitCode);
        await using var open = await new RegistryContainer().StartAsync();
        await using var secured = await new RegistryContainer(new RegistryContainerOptions { Htpasswd = htpasswd.StdOut }).StartAsync();
        var basic = Convert.ToBase64String(Encoding.UTF8.GetBytes("pusher:" + password));
        var authfile = tmp.WriteFile("auth.json", "{\"auths\":{\"" + secured.HostPort + "\":{\"auth\":\"" + basic + "\"}}}");

        await using var mr = await FakeModelRegistry.StartAsync();
        var mrToken = tmp.WriteFile("mr-token", "mr-token-" + Guid.NewGuid().ToString("N"));

        var baseLayout = tmp.Combine("busybox");
        TestBases.WriteLayout(baseLayout, "latest", TestBases.BusyboxLayer());

        var model = tmp.Combine("model");
        var image = tmp.Combine("image");
        string tag = "quantized-w4a16-2501";
        var dests = new[] { $"{open.HostPort}/models/tiny", $"{secured.HostPort}/org/tiny" };

        async Task<(string Digest, ToolResult Push, ToolResult Register)> RunPipeline(int round)
        {
            var results = tmp.Combine($"results-{round}");
            var fetch = await Run("hf-fetch", RepoId, "--dest", model, "--endpoint", hub.Endpoint, "--results-dir", Path.Combine(results, "download"));
            Assert.Equal(repo.Commit, fetch.StdOut.Trim());

            var pack = await Run("oci-pack", "--model", model, "--output", $"oci:{image}:{tag}", "--base", $"oci:{baseLayout}:latest",
                "--layer-threshold", "1M", "--results-dir", Path.Combine(results, "pack"));
            var digest = pack.StdOut.Trim();
            Assert.Matches("^sha256:[0-9a-f]{64}$", digest);
            Assert.Equal(digest, File.ReadAllText(Path.Combine(results, "pack", "IMAGE_DIGEST")));

            var push = await Run("registry-push", "--source", $"oci:{image}:{tag}", "--dest", $"docker://{dests[0]}:{tag}", "--dest", $"docker://{dests[1]}:{tag}",
                "--authfile", authfile, "--tls-verify=false", "--results-dir", Path.Combine(results, "push"));
            var pushed = push.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            Assert.Equal(dests.Select(d => $"{d}@{digest}").Order(), pushed.Order());

            var register = await Run("mr-register", "register", "--server", mr.Url.ToString(), "--tls-verify=false", "--token-file", mrToken,
                "--model-name", "Mistral-Small-24B-Instruct", "--version-name", tag, "--uri", $"oci://{dests[1]}@{digest}",
                "--model-format-name", "vLLM", "--model-format-version", "1", "--results-dir", Path.Combine(results, "register"));
            Assert.Equal($"oci://{dests[1]}@{digest}", File.ReadAllText(Path.Combine(results, "register", "model-uri")));
            return (digest, push, register);
        }

        // first run: everything happens
        var first = await RunPipeline(1);
        foreach (var (path, bytes) in source)
        {
            Assert.True(hub.Served(path) >= bytes.Length, $"{path} was not downloaded");
        }
        Assert.Empty(hub.Violations);
        Assert.Equal(3, mr.Creates.Count);

        // both registries hold the same manifest digest, per skopeo
        foreach (var (dest, registry) in new[] { (dests[0], open), (dests[1], secured) })
        {
            var args = new List<string> { "inspect", "--tls-verify=false", "--raw" };
            if (registry == secured)
            {
                args.AddRange(["--authfile", authfile]);
            }
            args.Add($"docker://{dest}:{tag}");
            var raw = await PeerTools.RunAsync("skopeo", args);
            Assert.True(raw.ExitCode == 0, raw.ToString());
            Assert.Equal(first.Digest, "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(raw.StdOut))));
        }

        // pull back from the authenticated registry and unpack: /models equals the source, /bin/sh is there
        var pulled = tmp.Combine("pulled");
        var copy = await PeerTools.RunAsync("skopeo", ["copy", "--src-tls-verify=false", "--src-authfile", authfile, $"docker://{dests[1]}:{tag}", $"oci:{pulled}:{tag}"]);
        Assert.True(copy.ExitCode == 0, copy.ToString());
        var bundle = tmp.Combine("bundle");
        var unpack = await PeerTools.RunAsync("umoci", ["unpack", "--image", $"{pulled}:{tag}", bundle]);
        Assert.True(unpack.ExitCode == 0, unpack.ToString());
        var rootfs = Path.Combine(bundle, "rootfs");
        Assert.True(File.Exists(Path.Combine(rootfs, "bin", "busybox")));
        Assert.NotNull(new FileInfo(Path.Combine(rootfs, "bin", "sh")).LinkTarget);
        var unpacked = Directory.GetFiles(Path.Combine(rootfs, "models"), "*", SearchOption.AllDirectories)
            .ToDictionary(f => Path.GetRelativePath(Path.Combine(rootfs, "models"), f), File.ReadAllBytes);
        Assert.Equal(source.Keys.Order(), unpacked.Keys.Order());
        foreach (var (path, bytes) in source)
        {
            Assert.True(bytes.AsSpan().SequenceEqual(unpacked[path]), $"{path} differs after the round trip");
        }

        // second run: nothing is downloaded, uploaded or registered again
        long servedBefore = source.Keys.Sum(hub.Served);
        mr.ClearLog();
        var second = await RunPipeline(2);
        Assert.Equal(first.Digest, second.Digest);
        Assert.Equal(servedBefore, source.Keys.Sum(hub.Served));
        Assert.Empty(mr.Writes);
        Assert.Equal(first.Register.StdOut, second.Register.StdOut);
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Matches(second.Push.StdErr, @" 0 mounted, 0 uploaded \(0 B\)").Count);
        Assert.DoesNotMatch(@"blob sha256:[0-9a-f]+ uploaded", second.Push.StdErr);
        Assert.Matches(@"blob sha256:[0-9a-f]+ uploaded", first.Push.StdErr);

        // no secret in any output
        foreach (var output in new[] { first.Push, second.Push, first.Register, second.Register })
        {
            Assert.DoesNotContain(password, output.AllOutput);
            Assert.DoesNotContain(File.ReadAllText(mrToken), output.AllOutput);
        }
    }

    private static async Task<ToolResult> Run(string tool, params string[] args)
    {
        var r = await ToolRunner.RunAsync(tool, args);
        Assert.True(r.ExitCode == 0, $"{tool} failed: {r}");
        return r;
    }
}
