using ModelCar.Packing;
using System.Text;
using ModelCar.TestSupport;

namespace ModelCar.OciPack.Tests;

/// <summary>A docker:// base from the registry container, with Basic auth through --authfile.</summary>
public sealed class RegistryBaseTests : IDisposable
{
    private readonly TempDir _dir = new("oci-pack-reg");

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Docker_base_with_auth_gives_the_same_image_as_the_layout_base_and_never_logs_the_password()
    {
        const string user = "puller";
        var password = "S3cret-" + Guid.NewGuid().ToString("N")[..12];
        var htpasswd = await PeerTools.RunAsync("htpasswd", ["-Bbn", user, password]);
        Assert.Equal(0, htpasswd.ExitCode);
        await using var registry = await new RegistryContainer(new RegistryContainerOptions { Htpasswd = htpasswd.StdOut }).StartAsync();

        var baseDir = _dir.Combine("base");
        Directory.CreateDirectory(baseDir);
        var baseDigest = TestBases.WriteLayout(baseDir, "1", TestBases.BusyboxLayer(), gzip: true);
        var push = await PeerTools.RunAsync("skopeo", ["copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds", $"{user}:{password}",
            $"oci:{baseDir}:1", $"docker://{registry.HostPort}/base/busybox:1"]);
        Assert.True(push.ExitCode == 0, push.ToString());

        _dir.WriteFile("model/config.json", "{}");
        _dir.WriteFile("model/weights.bin", TempDir.RandomBytes(1 << 20, 3));
        var model = _dir.Combine("model");
        var local = await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"oci:{baseDir}:1", "--output", $"oci:{_dir.Combine("a")}");
        Assert.True(local.ExitCode == 0, local.ToString());

        var authFile = _dir.WriteFile("auth.json",
            "{\"auths\":{\"" + registry.HostPort + "\":{\"auth\":\"" + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")) + "\"}}}");
        var remote = await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"docker://{registry.HostPort}/base/busybox:1",
            "--tls-verify=false", "--authfile", authFile, "--verbose", "--output", $"oci-archive:{_dir.Combine("b.tar")}");
        Assert.True(remote.ExitCode == 0, remote.ToString());
        await AssertSameImageNamingTheBase($"oci:{_dir.Combine("a")}", $"oci-archive:{_dir.Combine("b.tar")}", $"{registry.HostPort}/base/busybox:1");
        Assert.DoesNotContain(password, remote.AllOutput);

        // the base pinned by digest, with the credentials in a legacy .dockercfg (OpenShift's SA secret format)
        Assert.StartsWith("sha256:", baseDigest);
        var dockercfg = _dir.WriteFile("sa-secret/.dockercfg",
            "{\"" + registry.HostPort + "\":{\"auth\":\"" + Convert.ToBase64String(Encoding.UTF8.GetBytes($"{user}:{password}")) + "\",\"email\":\"sa@example.org\"}}");
        var pinned = await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"docker://{registry.HostPort}/base/busybox@{baseDigest}",
            "--tls-verify=false", "--authfile", dockercfg, "--output", $"oci:{_dir.Combine("pinned")}");
        Assert.True(pinned.ExitCode == 0, pinned.ToString());
        await AssertSameImageNamingTheBase($"oci:{_dir.Combine("a")}", $"oci:{_dir.Combine("pinned")}", $"{registry.HostPort}/base/busybox@{baseDigest}");
        var otherDigest = "sha256:" + new string('0', 64);
        var unknown = await ToolRunner.RunAsync("oci-pack", "--model", model, "--base", $"docker://{registry.HostPort}/base/busybox@{otherDigest}",
            "--tls-verify=false", "--authfile", dockercfg, "--output", $"oci:{_dir.Combine("unknown")}");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains(otherDigest, unknown.StdErr);
        Assert.False(Directory.Exists(_dir.Combine("unknown")));

        // the packed image pushed with registry-push and pulled back by skopeo keeps its digest
        var push2 = await ToolRunner.RunAsync("registry-push", "--source", $"oci:{_dir.Combine("a")}", "--dest", $"docker://{registry.HostPort}/models/tiny:v1",
            "--tls-verify=false", "--authfile", authFile);
        Assert.True(push2.ExitCode == 0, push2.ToString());
        var pulled = await PeerTools.RunAsync("skopeo", ["inspect", "--tls-verify=false", "--creds", $"{user}:{password}", $"docker://{registry.HostPort}/models/tiny:v1"]);
        Assert.True(pulled.ExitCode == 0, pulled.ToString());
        Assert.Equal(local.StdOut.Trim(), System.Text.Json.JsonDocument.Parse(pulled.StdOut).RootElement.GetProperty("Digest").GetString());
        var back = await PeerTools.RunAsync("skopeo", ["copy", "--src-tls-verify=false", "--src-creds", $"{user}:{password}", $"docker://{registry.HostPort}/models/tiny:v1", $"oci:{_dir.Combine("pulled")}:v1"]);
        Assert.True(back.ExitCode == 0, back.ToString());

        var anonymous = await ToolRunner.RunAsync("oci-pack", ["--model", model, "--base", $"docker://{registry.HostPort}/base/busybox:1",
            "--tls-verify=false", "--output", $"oci:{_dir.Combine("c")}"], new Dictionary<string, string?> { ["REGISTRY_AUTH_FILE"] = null, ["HOME"] = _dir.Path, ["XDG_RUNTIME_DIR"] = null, ["DOCKER_CONFIG"] = null });
        Assert.Equal(1, anonymous.ExitCode);
        Assert.Contains("401", anonymous.StdErr);
        Assert.False(Directory.Exists(_dir.Combine("c")));
    }

    /// <summary>
    /// A registry base gives the layout base's image plus org.opencontainers.image.base.name (the
    /// reference as given; a local layout's path is no reference, so it has none): same config and
    /// layers, same base.digest.
    /// </summary>
    private static async Task AssertSameImageNamingTheBase(string fromLayout, string fromRegistry, string baseName)
    {
        async Task<System.Text.Json.Nodes.JsonObject> Raw(string image)
        {
            var r = await PeerTools.RunAsync("skopeo", ["inspect", "--raw", image]);
            Assert.True(r.ExitCode == 0, r.ToString());
            return System.Text.Json.Nodes.JsonNode.Parse(r.StdOut)!.AsObject();
        }
        var expected = await Raw(fromLayout);
        var actual = await Raw(fromRegistry);
        var annotations = actual["annotations"]!.AsObject();
        Assert.Equal(baseName, (string?)annotations["org.opencontainers.image.base.name"]);
        Assert.Null(expected["annotations"]!["org.opencontainers.image.base.name"]);
        annotations.Remove("org.opencontainers.image.base.name");
        Assert.True(System.Text.Json.Nodes.JsonNode.DeepEquals(expected, actual), $"{fromLayout}: {expected.ToJsonString()}\n{fromRegistry}: {actual.ToJsonString()}");
    }
}
