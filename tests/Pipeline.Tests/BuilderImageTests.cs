using ModelCar.Packing;
using System.Text;
using System.Text.Json;
using ModelCar.TestSupport;

namespace ModelCar.Pipeline.Tests;

/// <summary>
/// The builder image (images/Containerfile) builds with podman offline (scripts/build-image.sh:
/// the published binaries on a stand-in for ubi9/ubi-minimal holding exactly its glibc, OpenSSL 3
/// and CA-bundle files), stays small, and every tool works in it the way OpenShift runs it: a
/// random UID with GID 0, no HOME, a read-only root with only /tmp writable, TLS verified against
/// a CA given with --ca-file, SHA-256 through the image's OpenSSL.
/// </summary>
public class BuilderImageTests
{
    /// <summary>The runtime glibc floor: UBI 9's glibc.</summary>
    private static readonly Version UbiGlibc = new(2, 34);

    private static readonly string[] Tools = ["hf-fetch", "oci-pack", "registry-push", "mr-register"];

    [Fact]
    public async Task Image_builds_offline_and_every_tool_runs_in_it()
    {
        var tag = await BuilderImage.EnsureBuiltAsync();
        var inspect = await Podman.RunAsync("image", "inspect", tag);
        Assert.True(inspect.ExitCode == 0, inspect.ToString());
        using var doc = JsonDocument.Parse(inspect.StdOut);
        var img = doc.RootElement[0];
        Assert.True(img.GetProperty("Size").GetInt64() < 80L * 1000 * 1000, $"image is {img.GetProperty("Size").GetInt64()} bytes");
        Assert.Equal("1001", img.GetProperty("Config").GetProperty("User").GetString());
        Assert.Equal("modelcar-tools", img.GetProperty("Config").GetProperty("Labels").GetProperty("org.opencontainers.image.title").GetString());

        foreach (var tool in Tools)
        {
            var v = await Podman.RunAsync([.. PodmanStepExecutor.RestrictedRunArgs(BuilderImage.RandomUid()), "--unsetenv=HOME", tag, $"/usr/local/bin/{tool}", "--version"]);
            Assert.True(v.ExitCode == 0, $"{tool}: {v}");
            Assert.Matches(@"^\d+\.\d+\.\d+", v.StdOut.Trim());
        }
    }

    /// <summary>
    /// The offline base holds ubi9/ubi-minimal's glibc, openssl-libs and ca-certificates files at
    /// ubi-minimal's paths and nothing more (no shell, no user 1001), so a dependency the tools
    /// load that ubi-minimal lacks would fail here too.
    /// </summary>
    [Fact]
    public async Task Offline_base_holds_exactly_the_ubi_minimal_files_the_tools_load()
    {
        await BuilderImage.EnsureBuiltAsync();
        var mount = await Podman.RunAsync("image", "mount", BuilderImage.TestBase);
        Assert.True(mount.ExitCode == 0, mount.ToString());
        var root = mount.StdOut.Trim();
        try
        {
            var entries = Directory.EnumerateFileSystemEntries(root, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
                .Where(p => !Directory.Exists(p) || new FileInfo(p).LinkTarget is not null)
                .Select(p => (Path: Path.GetRelativePath(root, p), Link: new FileInfo(p).LinkTarget))
                // a symlinked directory's children are listed through the link: keep the link only
                .Where(e => !e.Path.StartsWith("lib64/", StringComparison.Ordinal) && !e.Path.StartsWith("etc/ssl/certs/", StringComparison.Ordinal) && !e.Path.StartsWith("usr/lib/ssl/certs/", StringComparison.Ordinal))
                .ToDictionary(e => e.Path, e => e.Link);
            var expected = new Dictionary<string, string?>
            {
                // glibc
                ["usr/lib64/ld-linux-x86-64.so.2"] = null,
                ["usr/lib64/libc.so.6"] = null,
                ["usr/lib64/libm.so.6"] = null,
                ["lib64"] = "usr/lib64",
                ["etc/ld.so.conf"] = null,
                ["etc/ld.so.cache"] = null,
                // openssl-libs
                ["usr/lib64/libssl.so.3"] = null,
                ["usr/lib64/libcrypto.so.3"] = null,
                // ca-certificates
                ["etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"] = null,
                ["etc/pki/tls/certs/ca-bundle.crt"] = "../../ca-trust/extracted/pem/tls-ca-bundle.pem",
                ["etc/pki/tls/cert.pem"] = "certs/ca-bundle.crt",
                ["etc/ssl/certs"] = "../pki/tls/certs",
                // the host libcrypto's OPENSSLDIR pointed at the same bundle (see scripts/build-image.sh)
                ["usr/lib/ssl/cert.pem"] = "/etc/pki/tls/cert.pem",
                ["usr/lib/ssl/certs"] = "/etc/pki/tls/certs",
                // setup
                ["etc/passwd"] = null,
                ["etc/group"] = null,
            };
            Assert.Equal(expected.OrderBy(e => e.Key), entries.OrderBy(e => e.Key));
            Assert.DoesNotContain(":1001:", File.ReadAllText(Path.Combine(root, "etc", "passwd")));
            Assert.Equal((UnixFileMode)Convert.ToInt32("1777", 8), File.GetUnixFileMode(Path.Combine(root, "tmp")));
        }
        finally
        {
            await Podman.RunAsync("image", "unmount", BuilderImage.TestBase);
        }
    }

    /// <summary>
    /// Every tool does its real job in the image as OpenShift runs it: hf-fetch from an https Hub,
    /// oci-pack (SHA-256 over every layer), registry-push over TLS with a login, mr-register over
    /// TLS with a token; each server's certificate signed by a test CA that only --ca-file names.
    /// Without --ca-file the push is refused: verification is on and the CA is what passes it.
    /// </summary>
    [Fact]
    public async Task Tools_work_as_a_random_uid_with_gid_0_without_home_on_a_read_only_root_with_tls_from_ca_file()
    {
        var tag = await BuilderImage.EnsureBuiltAsync();
        using var tmp = new TempDir("mc-image");
        using var ca = TestCerts.CreateCa("image test CA");
        var uid = BuilderImage.RandomUid();

        var secrets = tmp.Combine("secrets");
        Directory.CreateDirectory(secrets);
        File.WriteAllText(Path.Combine(secrets, "ca.pem"), ca.ExportCertificatePem());
        var password = "pw-" + Guid.NewGuid().ToString("N");
        File.WriteAllText(Path.Combine(secrets, "password"), password);
        var mrToken = "mr-" + Guid.NewGuid().ToString("N");
        File.WriteAllText(Path.Combine(secrets, "token"), mrToken);

        var work = tmp.Combine("work");
        Directory.CreateDirectory(work);
        File.SetUnixFileMode(work, (UnixFileMode)Convert.ToInt32("770", 8)); // root:root, written through GID 0
        TestBases.WriteLayout(Path.Combine(work, "base"), "latest", TestBases.BusyboxLayer());

        await using var hub = new FakeHub(TestCerts.CreateServerCertificate(ca));
        var repo = hub.AddRepo("modelcar-image/tiny");
        repo.Add("config.json", Encoding.UTF8.GetBytes("{\"model_type\":\"mistral\"}"));
        repo.Add("model.safetensors", TempDir.RandomBytes((2 << 20) + 3, 5), lfs: true);
        var htpasswd = await PeerTools.RunAsync("htpasswd", ["-Bbn", "pusher", password]);
        await using var registry = await new RegistryContainer(new RegistryContainerOptions { Htpasswd = htpasswd.StdOut, Tls = TestCerts.CreateServerCert(ca) }).StartAsync();
        await using var mr = await FakeModelRegistry.StartAsync(TestCerts.CreateServerCertificate(ca));
        mr.Token = mrToken;

        Task<ToolResult> Run(params string[] toolArgs) => Podman.RunAsync([.. PodmanStepExecutor.RestrictedRunArgs(uid), "--unsetenv=HOME",
            "-v", $"{work}:/work", "-v", $"{secrets}:/secrets:ro", "--entrypoint", $"/usr/local/bin/{toolArgs[0]}", tag, .. toolArgs[1..]]);

        var env = await Podman.RunAsync([.. PodmanStepExecutor.RestrictedRunArgs(uid), "--unsetenv=HOME", "--entrypoint", "/usr/local/bin/hf-fetch", tag, "--version"]);
        Assert.True(env.ExitCode == 0, env.ToString());

        var fetch = await Run("hf-fetch", repo.Id, "--dest", "/work/model", "--endpoint", hub.Endpoint, "--ca-file", "/secrets/ca.pem");
        Assert.True(fetch.ExitCode == 0, fetch.ToString());
        Assert.Equal(repo.Commit, fetch.StdOut.Trim());

        var pack = await Run("oci-pack", "--model", "/work/model", "--base", "oci:/work/base:latest", "--output", "oci:/work/image:v1", "--layer-threshold", "1M", "--results-dir", "/work/results");
        Assert.True(pack.ExitCode == 0, pack.ToString());
        var digest = pack.StdOut.Trim();
        Assert.Equal(digest, File.ReadAllText(Path.Combine(work, "results", "IMAGE_DIGEST")));
        var host = await ToolRunner.RunAsync("oci-pack", "--model", Path.Combine(work, "model"), "--base", $"oci:{Path.Combine(work, "base")}:latest",
            "--output", $"oci:{tmp.Combine("host-image")}:v1", "--layer-threshold", "1M");
        Assert.True(host.ExitCode == 0, host.ToString());
        Assert.Equal(digest, host.StdOut.Trim()); // the image's OpenSSL hashes as the host's does

        var dest = $"docker://{registry.HostPort}/test/tiny:v1";
        var untrusted = await Run("registry-push", "--source", "oci:/work/image:v1", "--dest", dest, "--login", $"{registry.HostPort}=pusher:/secrets/password", "--retries", "0");
        Assert.Equal(1, untrusted.ExitCode);
        var push = await Run("registry-push", "--source", "oci:/work/image:v1", "--dest", dest, "--login", $"{registry.HostPort}=pusher:/secrets/password", "--ca-file", "/secrets/ca.pem");
        Assert.True(push.ExitCode == 0, push.ToString());
        var certDir = tmp.Combine("certs");
        Directory.CreateDirectory(certDir);
        File.Copy(Path.Combine(secrets, "ca.pem"), Path.Combine(certDir, "ca.crt"));
        var raw = await PeerTools.RunAsync("skopeo", ["inspect", "--raw", "--cert-dir", certDir, "--creds", "pusher:" + password, dest]);
        Assert.True(raw.ExitCode == 0, raw.ToString());
        Assert.Equal(digest, "sha256:" + Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(raw.StdOut))));

        var register = await Run("mr-register", "register", "--server", mr.Url.ToString(), "--token-file", "/secrets/token", "--ca-file", "/secrets/ca.pem",
            "--model-name", "Tiny", "--version-name", "v1", "--uri", $"oci://{registry.HostPort}/test/tiny@{digest}");
        Assert.True(register.ExitCode == 0, register.ToString());
        Assert.Single(mr.Artifacts);

        // what the tools wrote is the UID's, group 0, readable by every UID of the namespace
        var stat = await PeerTools.RunAsync("stat", ["-c", "%u %g %a", Path.Combine(work, "model", "config.json"), Path.Combine(work, "image", "index.json"), Path.Combine(work, "image")]);
        Assert.Equal([$"{uid} 0 644", $"{uid} 0 644", $"{uid} 0 755"], stat.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries));

        // the root file system really is read-only: a write outside the mounts fails
        var outside = await Run("oci-pack", "--model", "/work/model", "--base", "oci:/work/base:latest", "--output", "oci:/image:v1");
        Assert.Equal(1, outside.ExitCode);
        foreach (var r in new[] { fetch, pack, push, register, untrusted })
        {
            Assert.DoesNotContain(password, r.AllOutput);
            Assert.DoesNotContain(mrToken, r.AllOutput);
        }
    }

    /// <summary>
    /// PLATFORMS=linux/amd64,linux/arm64 scripts/build-image.sh builds the image for both architectures
    /// offline (the arm64 one from the cross-published out/bin-arm64 on an arm64 stand-in for
    /// ubi-minimal) and a two-platform OCI image index; each image runs every tool as a random UID with
    /// GID 0 on a read-only root — the arm64 one under qemu-user-static — and oci-pack in the arm64
    /// image packs the same image (digest) as the host's binary.
    /// </summary>
    [Fact]
    public async Task Two_platform_image_index_builds_offline_and_both_images_run_the_tools_arm64_under_qemu()
    {
        await QemuUser.EnsureArm64Async();
        using var tmp = new TempDir("mc-image-multi");
        const string tag = "localhost/modelcar-tools:multi";
        var layout = tmp.Combine("index");
        await Podman.RunAsync("rmi", "-f", BuilderImage.TestBase + "-arm64"); // rebuilt: the script's arm64 base is what is tested
        var psi = new System.Diagnostics.ProcessStartInfo(Path.Combine(RepoPaths.Root, "scripts", "build-image.sh")) { WorkingDirectory = RepoPaths.Root, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(tag);
        psi.Environment["PLATFORMS"] = "linux/amd64,linux/arm64";
        psi.Environment["INDEX_LAYOUT"] = layout;
        var build = await ToolRunner.RunProcessAsync(psi, "scripts/build-image.sh (two platforms)", TimeSpan.FromMinutes(10));
        Assert.True(build.ExitCode == 0, build.ToString());

        // the index: one manifest per platform, each config of its architecture
        var root = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(layout, "index.json"))).RootElement.GetProperty("manifests")[0];
        byte[] Blob(string digest) => File.ReadAllBytes(Path.Combine(layout, "blobs", "sha256", digest["sha256:".Length..]));
        var index = JsonDocument.Parse(Blob(root.GetProperty("digest").GetString()!)).RootElement;
        Assert.Equal("application/vnd.oci.image.index.v1+json", index.GetProperty("mediaType").GetString());
        var archs = new List<string>();
        foreach (var entry in index.GetProperty("manifests").EnumerateArray())
        {
            var arch = entry.GetProperty("platform").GetProperty("architecture").GetString()!;
            var manifest = JsonDocument.Parse(Blob(entry.GetProperty("digest").GetString()!)).RootElement;
            var config = JsonDocument.Parse(Blob(manifest.GetProperty("config").GetProperty("digest").GetString()!)).RootElement;
            Assert.Equal(arch, config.GetProperty("architecture").GetString());
            Assert.Equal("1001", config.GetProperty("config").GetProperty("User").GetString());
            archs.Add(arch);
        }
        Assert.Equal(["amd64", "arm64"], archs.Order());

        // the arm64 image holds the aarch64 binaries (ELF e_machine 183) on ubi-minimal's aarch64 loader path
        var mount = await Podman.RunAsync("image", "mount", tag + "-arm64");
        Assert.True(mount.ExitCode == 0, mount.ToString());
        try
        {
            var rootfs = mount.StdOut.Trim();
            foreach (var tool in Tools)
            {
                var elf = File.ReadAllBytes(Path.Combine(rootfs, "usr", "local", "bin", tool)).AsSpan(0, 20).ToArray();
                Assert.Equal(183, BitConverter.ToUInt16(elf, 18));
            }
            Assert.Equal("../lib64/ld-linux-aarch64.so.1", new FileInfo(Path.Combine(rootfs, "usr", "lib", "ld-linux-aarch64.so.1")).LinkTarget);
            Assert.Equal("usr/lib", new FileInfo(Path.Combine(rootfs, "lib")).LinkTarget);
            Assert.False(File.Exists(Path.Combine(rootfs, "usr", "lib64", "ld-linux-x86-64.so.2")));
        }
        finally
        {
            await Podman.RunAsync("image", "unmount", tag + "-arm64");
        }

        var version = (await ToolRunner.RunAsync("oci-pack", "--version")).StdOut.Trim();
        var work = tmp.Combine("work");
        Directory.CreateDirectory(work);
        File.SetUnixFileMode(work, (UnixFileMode)Convert.ToInt32("777", 8));
        TestBases.WriteTwoPlatformBusybox(Path.Combine(work, "base"), "1");
        Directory.CreateDirectory(Path.Combine(work, "model"));
        File.WriteAllText(Path.Combine(work, "model", "config.json"), """{"model_type":"tiny"}""");
        File.WriteAllBytes(Path.Combine(work, "model", "w.bin"), TempDir.RandomBytes((1 << 20) + 9, 41));
        var host = await ToolRunner.RunAsync("oci-pack", "--model", Path.Combine(work, "model"), "--base", $"oci:{Path.Combine(work, "base")}:1",
            "--output", $"oci:{tmp.Combine("host-image")}:v1", "--layer-threshold", "512K", "--platform", "linux/amd64,linux/arm64");
        Assert.True(host.ExitCode == 0, host.ToString());
        foreach (var arch in new[] { "amd64", "arm64" })
        {
            var uid = BuilderImage.RandomUid();
            foreach (var tool in Tools)
            {
                var v = await Podman.RunAsync([.. PodmanStepExecutor.RestrictedRunArgs(uid), "--unsetenv=HOME", $"{tag}-{arch}", $"/usr/local/bin/{tool}", "--version"]);
                Assert.True(v.ExitCode == 0, $"{arch} {tool}: {v}");
                Assert.Equal(version.Split('+')[0], v.StdOut.Trim().Split('+')[0]); // the build hash may differ: out/bin and out/bin-arm64 are published separately
            }
            var pack = await Podman.RunAsync([.. PodmanStepExecutor.RestrictedRunArgs(uid), "--unsetenv=HOME", "-v", $"{work}:/work",
                "--entrypoint", "/usr/local/bin/oci-pack", $"{tag}-{arch}",
                "--model", "/work/model", "--base", "oci:/work/base:1", "--output", $"oci:/work/image-{arch}:v1", "--layer-threshold", "512K", "--platform", "linux/amd64,linux/arm64"]);
            Assert.True(pack.ExitCode == 0, $"{arch}: {pack}");
            Assert.Equal(host.StdOut.Trim(), pack.StdOut.Trim());
        }
    }

    /// <summary>
    /// The published binaries need no glibc symbol newer than UBI 9's 2.34: built on a newer glibc
    /// (e.g. the Ubuntu 24.04 SDK image, 2.39) they could need GLIBC_2.35+ and fail to start there.
    /// </summary>
    [Fact]
    public async Task Published_binaries_need_no_glibc_newer_than_ubi9()
    {
        foreach (var tool in Tools)
        {
            var dump = await PeerTools.RunAsync("objdump", ["-T", ToolRunner.PathOf(tool)]);
            Assert.True(dump.ExitCode == 0, dump.ToString());
            var versions = System.Text.RegularExpressions.Regex.Matches(dump.StdOut, @"GLIBC_(\d+\.\d+(?:\.\d+)?)")
                .Select(m => Version.Parse(m.Groups[1].Value)).ToList();
            Assert.NotEmpty(versions);
            Assert.True(versions.Max() <= UbiGlibc, $"{tool} needs GLIBC_{versions.Max()}, UBI 9 has {UbiGlibc}");
        }
        var containerfile = File.ReadAllText(Path.Combine(RepoPaths.Root, "images", "Containerfile"));
        Assert.Contains("ARG SDK_IMAGE=registry.access.redhat.com/ubi9/dotnet-100", containerfile);
        Assert.Contains("ARG RUNTIME_IMAGE=registry.access.redhat.com/ubi9/ubi-minimal", containerfile);
    }
}
