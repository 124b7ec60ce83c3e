using ModelCar.Packing;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using ModelCar.TestSupport;

namespace ModelCar.Pipeline.Tests;

/// <summary>
/// Runs the shipped tekton/ YAML (Pipeline, Tasks, PipelineRuns) the way the cluster does, on the
/// builder image: <see cref="TektonEngine"/> substitutes params, arrays, workspace paths and results
/// like Tekton; <see cref="PodmanStepExecutor"/> starts each step like a restricted-v2 pod (random
/// UID, GID 0, read-only root, tmpfs /tmp, no capabilities). The servers are what the cluster would
/// offer: an "internal registry" that accepts the pod's service-account token (htpasswd user
/// serviceaccount) and a "quay" with a robot account (a .dockerconfigjson secret), both with TLS
/// certificates from a test "service CA" that is mounted only as
/// /var/run/secrets/kubernetes.io/serviceaccount/service-ca.crt, a Model Registry behind the same
/// CA that accepts only the SA token, and a Hub with a gated repo. Only the servers' addresses,
/// the builder image and the base image (a local two-platform busybox index, pinned by digest)
/// differ from the shipped PipelineRuns. The default pipeline is download → pack-and-push (one
/// oci-pack, a docker:// output per registry) → register: skopeo then finds the same digest (an
/// image index for linux/amd64 and linux/arm64) in both registries, and the PVC holds the model alone.
/// </summary>
public class ShippedPipelineTests
{
    private const string Namespace = "models";

    private sealed class Cluster : IAsyncDisposable
    {
        public required TempDir Tmp { get; init; }
        public required string SaToken { get; init; }
        public required string SaDir { get; init; }
        public required string CaPem { get; init; }
        public required string CertDir { get; init; }
        public required RegistryContainer Internal { get; init; }
        public required RegistryContainer Quay { get; init; }
        public required string QuayAuthFile { get; init; }
        public required string RobotPassword { get; init; }
        public required FakeHub Hub { get; init; }
        public required string HfToken { get; init; }
        public required FakeModelRegistry ModelRegistry { get; init; }
        public required Dictionary<string, IReadOnlyDictionary<string, string>> Secrets { get; init; }
        public required string BaseDigest { get; init; }
        public required string Image { get; init; }

        public async ValueTask DisposeAsync()
        {
            await ModelRegistry.DisposeAsync();
            await Hub.DisposeAsync();
            await Quay.DisposeAsync();
            await Internal.DisposeAsync();
            Tmp.Dispose();
        }
    }

    private static async Task<Cluster> StartClusterAsync()
    {
        var image = await BuilderImage.EnsureBuiltAsync();
        var tmp = new TempDir("mc-tekton");
        using var ca = TestCerts.CreateCa("openshift-service-serving-signer (test)");
        var caPem = ca.ExportCertificatePem();

        // the projected service-account volume every pod has
        var saToken = "eyJhbGciOiJSUzI1NiJ9.sa-" + Guid.NewGuid().ToString("N");
        var saDir = tmp.Combine("serviceaccount");
        Directory.CreateDirectory(saDir);
        File.WriteAllText(Path.Combine(saDir, "token"), saToken);
        File.WriteAllText(Path.Combine(saDir, "service-ca.crt"), caPem);
        using (var apiCa = TestCerts.CreateCa("kube-apiserver (test)"))
        {
            File.WriteAllText(Path.Combine(saDir, "ca.crt"), apiCa.ExportCertificatePem());
        }
        File.WriteAllText(Path.Combine(saDir, "namespace"), Namespace);
        var certDir = tmp.Combine("skopeo-certs");
        Directory.CreateDirectory(certDir);
        File.WriteAllText(Path.Combine(certDir, "service-ca.crt"), caPem);

        var internalHtpasswd = await PeerTools.RunAsync("htpasswd", ["-Bbn", "serviceaccount", saToken]);
        Assert.True(internalHtpasswd.ExitCode == 0, internalHtpasswd.ToString());
        var robot = "modelcar+pipeline";
        var robotPassword = "robot-" + Guid.NewGuid().ToString("N");
        var quayHtpasswd = await PeerTools.RunAsync("htpasswd", ["-Bbn", robot, robotPassword]);
        Assert.True(quayHtpasswd.ExitCode == 0, quayHtpasswd.ToString());
        var internalRegistry = await new RegistryContainer(new RegistryContainerOptions { Htpasswd = internalHtpasswd.StdOut, Tls = TestCerts.CreateServerCert(ca) }).StartAsync();
        var quay = await new RegistryContainer(new RegistryContainerOptions { Htpasswd = quayHtpasswd.StdOut, Tls = TestCerts.CreateServerCert(ca) }).StartAsync();
        var quayAuth = "{\"auths\":{\"" + quay.HostPort + "\":{\"auth\":\"" + Convert.ToBase64String(Encoding.UTF8.GetBytes(robot + ":" + robotPassword)) + "\"}}}";
        var quayAuthFile = tmp.WriteFile("quay-auth.json", quayAuth);

        var hub = new FakeHub(TestCerts.CreateServerCertificate(ca));
        var hfToken = "approved-hf_" + Guid.NewGuid().ToString("N"); // FakeHub: an account that accepted the terms
        hub.ValidTokens.Add(hfToken);
        var mr = await FakeModelRegistry.StartAsync(TestCerts.CreateServerCertificate(ca));
        mr.Token = saToken;

        // the ModelCar base: a busybox index for both default platforms in "quay", pulled by digest
        // through the robot's secret (the pipeline's default platforms are linux/amd64,linux/arm64)
        var baseLayout = tmp.Combine("busybox");
        TestBases.WriteMultiArchLayout(baseLayout, "latest", ("amd64", TestBases.BusyboxLayer()), ("arm64", Arm64BusyboxLayer()));
        var pushBase = await ToolRunner.RunAsync("registry-push", "--source", $"oci:{baseLayout}:latest", "--dest", $"docker://{quay.HostPort}/base/busybox:1",
            "--authfile", quayAuthFile, "--ca-file", Path.Combine(saDir, "service-ca.crt"));
        Assert.True(pushBase.ExitCode == 0, pushBase.ToString());

        return new Cluster
        {
            Tmp = tmp, SaToken = saToken, SaDir = saDir, CaPem = caPem, CertDir = certDir,
            Internal = internalRegistry, Quay = quay, QuayAuthFile = quayAuthFile, RobotPassword = robotPassword,
            Hub = hub, HfToken = hfToken, ModelRegistry = mr, BaseDigest = pushBase.StdOut.Trim().Split('@')[^1], Image = image,
            Secrets = new()
            {
                // oc create secret docker-registry quay-push-secret …: type kubernetes.io/dockerconfigjson
                ["quay-push-secret"] = new Dictionary<string, string> { [".dockerconfigjson"] = quayAuth },
                // oc create secret generic hf-token --from-file=token=…
                ["hf-token"] = new Dictionary<string, string> { ["token"] = hfToken },
                // Tekton Chains' signing-secrets (cosign generate-key-pair k8s://…): cosign.key, cosign.password, cosign.pub
                ["signing-secrets"] = SigningSecret(),
            },
        };
    }

    /// <summary>
    /// The arm64 platform's layer: Debian's arm64 busybox-static where scripts/prerequisites.sh
    /// unpacked it, else the amd64 one (this test checks the pipeline, not that arm64 starts: the
    /// oci-pack and builder-image tests run the arm64 ModelCar under qemu).
    /// </summary>
    private static byte[] Arm64BusyboxLayer()
    {
        var dir = Environment.GetEnvironmentVariable("MODELCAR_ARM64_BUSYBOX_DIR") is { Length: > 0 } d ? d : "/usr/local/share/modelcar-tests/busybox-arm64";
        var arm64 = Path.Combine(dir, "bin", "busybox");
        if (!File.Exists(arm64))
        {
            return TestBases.BusyboxLayer();
        }
        using var ms = new MemoryStream();
        using (var w = new System.Formats.Tar.TarWriter(ms, System.Formats.Tar.TarEntryFormat.Pax, leaveOpen: true))
        {
            w.WriteEntry(new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.Directory, "bin/") { Mode = (UnixFileMode)0b111_101_101, ModificationTime = DateTimeOffset.UnixEpoch });
            using var data = File.OpenRead(arm64);
            w.WriteEntry(new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.RegularFile, "bin/busybox") { Mode = (UnixFileMode)0b111_101_101, ModificationTime = DateTimeOffset.UnixEpoch, DataStream = data });
            foreach (var applet in TestBases.Applets)
            {
                w.WriteEntry(new System.Formats.Tar.PaxTarEntry(System.Formats.Tar.TarEntryType.SymbolicLink, "bin/" + applet) { LinkName = "busybox", ModificationTime = DateTimeOffset.UnixEpoch });
            }
        }
        return ms.ToArray();
    }

    /// <summary>A gated Mistral-like repo: sharded HF weights plus the duplicates the runs exclude.</summary>
    private static (FakeRepo Repo, Dictionary<string, byte[]> Kept, string[] Excluded) AddMistralRepo(FakeHub hub, string repoId, int seed)
    {
        var repo = hub.AddRepo(repoId, gated: true);
        var kept = new Dictionary<string, byte[]>
        {
            ["config.json"] = Encoding.UTF8.GetBytes("{\"model_type\":\"mistral\",\"hidden_size\":64}"),
            ["tokenizer.json"] = Encoding.UTF8.GetBytes("{\"version\":\"1.0\"}"),
            ["model.safetensors.index.json"] = Encoding.UTF8.GetBytes("{\"weight_map\":{}}"),
            ["model-00001-of-00002.safetensors"] = TempDir.RandomBytes((2 << 20) + 11, seed),
            ["model-00002-of-00002.safetensors"] = TempDir.RandomBytes((1 << 20) + 5, seed + 1),
        };
        var excluded = new Dictionary<string, byte[]>
        {
            ["consolidated.safetensors"] = TempDir.RandomBytes((3 << 20) + 16, seed + 2),
            ["original/consolidated.00.pth"] = TempDir.RandomBytes(1 << 20, seed + 3),
        };
        foreach (var (path, bytes) in kept.Concat(excluded))
        {
            repo.Add(path, bytes, lfs: bytes.Length >= 1 << 20);
        }
        return (repo, kept, excluded.Keys.ToArray());
    }

    private static (PipelineDef Pipeline, Dictionary<string, TaskDef> Tasks) LoadShipped(string pipeline = "modelcar-build") =>
        (TektonEngine.LoadPipeline(TektonYaml.Load(Path.Combine(TektonYaml.Dir("pipelines"), pipeline + ".yaml"))),
         Directory.GetFiles(TektonYaml.Dir("tasks"), "*.yaml").Select(f => TektonEngine.LoadTask(TektonYaml.Load(f))).ToDictionary(t => t.Name));

    /// <summary>The shipped run with only the addresses (and image, base) of this test's cluster.</summary>
    private static PipelineRunDef ShippedRun(string file, Cluster c)
    {
        var run = TektonEngine.LoadRun(TektonYaml.Load(Path.Combine(TektonYaml.Dir("runs"), file)));
        Assert.Equal("pipeline", run.ServiceAccount);
        var overrides = new Dictionary<string, ParamValue>
        {
            ["builder-image"] = ParamValue.Of(c.Image),
            ["hf-endpoint"] = ParamValue.Of(c.Hub.Endpoint),
            ["internal-registry"] = ParamValue.Of(c.Internal.HostPort),
            ["quay-registry"] = ParamValue.Of(c.Quay.HostPort),
            ["model-registry-url"] = ParamValue.Of(c.ModelRegistry.Url.ToString().TrimEnd('/')),
            ["base"] = ParamValue.Of($"docker://{c.Quay.HostPort}/base/busybox"),
            ["base-ref"] = ParamValue.Of("@" + c.BaseDigest),
        };
        var parameters = run.Params.ToDictionary();
        foreach (var (k, v) in overrides)
        {
            parameters[k] = v;
        }
        // the base comes from "quay" here (registry.access.redhat.com needs no credentials): bind the optional workspace
        var workspaces = run.Workspaces.Append(new WorkspaceBinding("base-registry-auth", "secret", null, "quay-push-secret")).ToList();
        return run with { Params = parameters, Workspaces = workspaces };
    }

    /// <summary>A cosign key pair as Chains' secret holds it: the encrypted private key, its password, the public key.</summary>
    private static Dictionary<string, string> SigningSecret()
    {
        using var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var password = "chains-" + Guid.NewGuid().ToString("N");
        return new Dictionary<string, string>
        {
            ["cosign.key"] = ModelCar.Signing.CosignKeys.EncryptToPem(ec.ExportPkcs8PrivateKey(), Encoding.UTF8.GetBytes(password), 32768),
            ["cosign.password"] = password,
            ["cosign.pub"] = ec.ExportSubjectPublicKeyInfoPem(),
        };
    }

    /// <summary>
    /// The deploy side: the shipped modelcar-verify Task alone (as tekton/examples/modelcar-deploy.yaml runs it) for the
    /// registered version, with the public key from the signing secret, pulling from quay with the robot's secret and
    /// from the internal registry with the pod's token. Returns its results, or the failing step's log.
    /// </summary>
    private static async Task<(IReadOnlyDictionary<string, string>? Results, string? Failure)> VerifyTaskAsync(Cluster c, PipelineRunDef build, string image, PodmanStepExecutor executor)
    {
        var tasks = LoadShipped().Tasks;
        YamlDotNet.RepresentationModel.YamlNode Str(string v) => new YamlDotNet.RepresentationModel.YamlScalarNode(v);
        var pt = new PipelineTaskDef("verify", "modelcar-verify",
        [
            ("builder-image", Str(c.Image)),
            ("server", Str(c.ModelRegistry.Url.ToString().TrimEnd('/'))),
            ("model-name", Str(Param(build, "model-name"))),
            ("version-name", Str(Param(build, "version-name"))),
            ("image", Str(image)),
            ("login", new YamlDotNet.RepresentationModel.YamlSequenceNode(Str("--login"), Str($"{c.Internal.HostPort}=serviceaccount:/var/run/secrets/kubernetes.io/serviceaccount/token"))),
            ("authfile", Str("/workspace/registry-auth/.dockerconfigjson")),
        ], [], new Dictionary<string, string> { ["verification-key"] = "verification-key", ["registry-auth"] = "registry-auth" }, 0);
        var pipeline = new PipelineDef("modelcar-verify-only", [], [("verification-key", false), ("registry-auth", true)], [pt], []);
        var run = new PipelineRunDef("modelcar-verify-only", new Dictionary<string, ParamValue>(),
            [new WorkspaceBinding("verification-key", "secret", null, "signing-secrets"), new WorkspaceBinding("registry-auth", "secret", null, "quay-push-secret")], "pipeline");
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        try
        {
            var result = await TektonEngine.RunAsync(run, pipeline, tasks, executor, cts.Token);
            return (result.TaskRuns["verify"].Results, null);
        }
        catch (PipelineRunFailed e)
        {
            return (null, e.Message);
        }
    }

    /// <summary>A pipeline param's value in this run (the run's, else the Pipeline's default).</summary>
    private static string Param(PipelineRunDef run, string name) =>
        run.Params.TryGetValue(name, out var v) ? v.String! : LoadShipped(run.PipelineRef).Pipeline.Params.Single(p => p.Name == name).Default!.String!;

    private static async Task<PipelineRunResult> RunAsync(PipelineRunDef run, PodmanStepExecutor executor)
    {
        var (pipeline, tasks) = LoadShipped(run.PipelineRef);
        using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(10));
        try
        {
            return await TektonEngine.RunAsync(run, pipeline, tasks, executor, cts.Token);
        }
        catch (PipelineRunFailed e)
        {
            throw new Xunit.Sdk.XunitException($"PipelineRun {executor.RunId} failed: {e.Message}\ncommands:\n{string.Join("\n", executor.CommandLines)}");
        }
    }

    private static string Sha256Hex(string raw) => "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(raw)));

    private static async Task AssertBothRegistriesHold(Cluster c, PipelineRunDef run, string digest)
    {
        var tag = Param(run, "version-name");
        var internalRef = $"docker://{c.Internal.HostPort}/{Param(run, "internal-repo")}:{tag}";
        var quayRef = $"docker://{c.Quay.HostPort}/{Param(run, "quay-repo")}:{tag}";
        var fromInternal = await PeerTools.RunAsync("skopeo", ["inspect", "--raw", "--cert-dir", c.CertDir, "--creds", "serviceaccount:" + c.SaToken, internalRef]);
        Assert.True(fromInternal.ExitCode == 0, fromInternal.ToString());
        Assert.Equal(digest, Sha256Hex(fromInternal.StdOut));
        var fromQuay = await PeerTools.RunAsync("skopeo", ["inspect", "--raw", "--cert-dir", c.CertDir, "--authfile", c.QuayAuthFile, quayRef]);
        Assert.True(fromQuay.ExitCode == 0, fromQuay.ToString());
        Assert.Equal(digest, Sha256Hex(fromQuay.StdOut));
    }

    private static string? Property(JsonObject artifact, string key) => artifact["customProperties"]?[key]?["string_value"]?.GetValue<string>();

    private static void AssertNoSecretIn(PipelineRunResult result, Cluster c)
    {
        foreach (var outcome in result.TaskRuns.Values.SelectMany(t => t.Outcomes))
        {
            Assert.DoesNotContain(c.SaToken, outcome.Log);
            Assert.DoesNotContain(c.RobotPassword, outcome.Log);
            Assert.DoesNotContain(c.HfToken, outcome.Log);
        }
    }

    [Fact]
    public async Task Quantized_run_as_shipped_pushes_one_digest_to_both_registries_and_registers_commit_and_digest()
    {
        await using var c = await StartClusterAsync();
        var run = ShippedRun("modelcar-build-quantized.yaml", c);
        // signed: the optional signing-secrets workspace bound to Chains' secret
        run = run with { Workspaces = run.Workspaces.Append(new WorkspaceBinding("signing-secrets", "secret", null, "signing-secrets")).ToList() };
        var (repo, kept, excluded) = AddMistralRepo(c.Hub, Param(run, "repo-id"), 10);
        var executor = new PodmanStepExecutor(c.Tmp.Combine("cluster"), c.Secrets, c.SaDir) { RunId = "quantized" };

        var result = await RunAsync(run, executor);

        // tasks in order, each once (no retry was needed), results fed forward
        Assert.Equal(new[] { "download", "pack-and-push", "register" }.Order(), result.TaskRuns.Keys.Order());
        Assert.All(result.TaskRuns.Values, t => Assert.Equal(1, t.Attempts));
        var digest = result.Results["IMAGE_DIGEST"];
        Assert.Matches("^sha256:[0-9a-f]{64}$", digest);
        Assert.Equal(repo.Commit, result.Results["commit"]);
        Assert.Equal(digest, result.TaskRuns["pack-and-push"].Results["IMAGE_DIGEST"]);
        // IMAGE_URL: the first docker:// output (quay), pinned by digest
        Assert.Equal($"{c.Quay.HostPort}/{Param(run, "quay-repo")}@{digest}", result.Results["IMAGE_URL"]);

        await AssertBothRegistriesHold(c, run, digest);

        // an image index with one manifest per default platform
        var quayRef = $"docker://{c.Quay.HostPort}/{Param(run, "quay-repo")}:{Param(run, "version-name")}";
        var index = await PeerTools.RunAsync("skopeo", ["inspect", "--raw", "--cert-dir", c.CertDir, "--authfile", c.QuayAuthFile, quayRef]);
        Assert.True(index.ExitCode == 0, index.ToString());
        var indexJson = JsonNode.Parse(index.StdOut)!;
        Assert.Equal("application/vnd.oci.image.index.v1+json", indexJson["mediaType"]!.GetValue<string>());
        Assert.Equal(["linux/amd64", "linux/arm64"], indexJson["manifests"]!.AsArray()
            .Select(m => m!["platform"]!["os"]!.GetValue<string>() + "/" + m["platform"]!["architecture"]!.GetValue<string>()).Order());

        // the Model Registry: one model, one version, one artifact with the commit and digest
        var mr = c.ModelRegistry;
        var model = Assert.Single(mr.Models);
        Assert.Equal(Param(run, "model-name"), model["name"]!.GetValue<string>());
        var version = Assert.Single(mr.Versions);
        Assert.Equal(Param(run, "version-name"), version["name"]!.GetValue<string>());
        var artifact = Assert.Single(mr.Artifacts);
        var uri = $"oci://{c.Quay.HostPort}/{Param(run, "quay-repo")}@{digest}";
        Assert.Equal(uri, artifact["uri"]!.GetValue<string>());
        Assert.Equal(uri, result.Results["model-uri"]);
        Assert.Equal(repo.Commit, Property(artifact, "hf_commit"));
        Assert.Equal(digest, Property(artifact, "image_digest"));
        Assert.Equal(Param(run, "repo-id"), Property(artifact, "hf_repo_id"));
        Assert.Equal("linux/amd64,linux/arm64", Property(artifact, "platforms"));
        // signed in both registries: 2 platforms + the index each, one attestation each, recorded with the file listing
        Assert.Matches("^sha256:[0-9a-f]{64}$", Property(artifact, "model-files-digest"));
        Assert.Equal(6, Property(artifact, "signature-digests")!.Split(',').Length);
        Assert.Equal(2, Property(artifact, "attestation-digests")!.Split(',').Length);
        var invocation = result.TaskRuns["pack-and-push"].Outcomes.Select(o => o.Log).ToList();

        // the deploy side: modelcar-verify passes on both registries ...
        executor.RunId = "verify-quay";
        var (fromQuay, quayFailure) = await VerifyTaskAsync(c, run, "", executor);
        Assert.True(quayFailure is null, quayFailure);
        Assert.Equal(uri, fromQuay!["MODEL_URI"]);
        Assert.Equal(repo.Commit, fromQuay["VERIFIED_COMMIT"]);
        var internalImage = $"{c.Internal.HostPort}/{Param(run, "internal-repo")}@{digest}";
        executor.RunId = "verify-internal";
        var (fromInternal, internalFailure) = await VerifyTaskAsync(c, run, "docker://" + internalImage, executor);
        Assert.True(internalFailure is null, internalFailure);
        Assert.Equal("oci://" + internalImage, fromInternal!["MODEL_URI"]);
        // ... and fails on an unsigned copy of the same digest (skopeo copies no cosign signatures)
        var unsignedRepo = $"{c.Internal.HostPort}/{Namespace}/unsigned-copy";
        var copyUnsigned = await PeerTools.RunAsync("skopeo", ["copy", "--all", "--preserve-digests", "--src-cert-dir", c.CertDir, "--src-authfile", c.QuayAuthFile,
            "--dest-cert-dir", c.CertDir, "--dest-creds", "serviceaccount:" + c.SaToken, $"docker://{c.Quay.HostPort}/{Param(run, "quay-repo")}@{digest}", $"docker://{unsignedRepo}:x"]);
        Assert.True(copyUnsigned.ExitCode == 0, copyUnsigned.ToString());
        executor.RunId = "verify-unsigned";
        var (_, unsignedFailure) = await VerifyTaskAsync(c, run, $"docker://{unsignedRepo}@{digest}", executor);
        Assert.NotNull(unsignedFailure);
        Assert.Contains("is unsigned", unsignedFailure, StringComparison.Ordinal);
        Assert.All(invocation, log => Assert.DoesNotContain(c.Secrets["signing-secrets"]["cosign.password"], log));
        executor.RunId = "quantized"; // the build run's fresh PVC is named after its run

        // the shipped excludes kept the duplicate weights off the PVC and out of the image
        foreach (var path in excluded)
        {
            Assert.Equal(0, c.Hub.Served(path));
        }
        foreach (var (path, bytes) in kept)
        {
            Assert.True(c.Hub.Served(path) >= bytes.Length, $"{path} was not downloaded");
        }
        // the amd64 image as skopeo pulls it (from quay): the kept files under /models, nothing else
        var pulled = c.Tmp.Combine("pulled");
        var copy = await PeerTools.RunAsync("skopeo", ["copy", "--override-arch", "amd64", "--src-cert-dir", c.CertDir, "--src-authfile", c.QuayAuthFile, quayRef, $"oci:{pulled}:x"]);
        Assert.True(copy.ExitCode == 0, copy.ToString());
        var manifest = await PeerTools.RunAsync("skopeo", ["inspect", "--raw", $"oci:{pulled}:x"]);
        Assert.True(manifest.ExitCode == 0, manifest.ToString());
        var entries = new List<string>();
        foreach (var layer in JsonNode.Parse(manifest.StdOut)!["layers"]!.AsArray())
        {
            var blob = Path.Combine(pulled, "blobs", "sha256", layer!["digest"]!.GetValue<string>()["sha256:".Length..]);
            // skopeo may store the layers gzip'd in its layout (the base's and, when it compresses, ours)
            Stream data = File.OpenRead(blob);
            if (layer["mediaType"]!.GetValue<string>().EndsWith("+gzip", StringComparison.Ordinal))
            {
                data = new System.IO.Compression.GZipStream(data, System.IO.Compression.CompressionMode.Decompress);
            }
            using var reader = new System.Formats.Tar.TarReader(data);
            while (reader.GetNextEntry() is { } entry)
            {
                entries.Add(entry.Name);
            }
        }
        Assert.True(entries.Count > 0, "no tar entries in the pulled image: " + manifest.StdOut);
        foreach (var path in kept.Keys)
        {
            Assert.Contains(entries, e => e.TrimStart('.', '/') == "models/" + path);
        }
        Assert.DoesNotContain(entries, e => e.Contains("consolidated", StringComparison.Ordinal) || e.Contains("original", StringComparison.Ordinal));

        // the PVC holds the model alone: no image layout, and beside the model files only small records
        var pvc = executor.PvcDir(run.Workspaces.Single(w => w.Name == "model"));
        var onPvc = Directory.GetFiles(pvc, "*", SearchOption.AllDirectories);
        Assert.DoesNotContain(onPvc, f => f.Contains("/blobs/sha256/", StringComparison.Ordinal) || Path.GetFileName(f) == "oci-layout");
        long modelBytes = kept.Values.Sum(b => (long)b.Length);
        long pvcBytes = onPvc.Sum(f => new FileInfo(f).Length);
        Assert.True(pvcBytes <= modelBytes + (256 << 10), $"the PVC holds {pvcBytes} bytes for a {modelBytes}-byte model:\n{string.Join("\n", onPvc)}");

        // written by the namespace's UID with GID 0, readable by any UID
        var stat = await PeerTools.RunAsync("stat", ["-c", "%u %g %a", Path.Combine(pvc, "model", "config.json")]);
        Assert.Equal($"{executor.Uid} 0 644", stat.StdOut.Trim());
        AssertNoSecretIn(result, c);
    }

    [Fact]
    public async Task Cached_run_on_a_persistent_claim_downloads_uploads_and_reads_nothing_the_second_time()
    {
        await using var c = await StartClusterAsync();
        var run = ShippedRun("modelcar-build-full-cached.yaml", c);
        var model = run.Workspaces.Single(w => w.Name == "model");
        Assert.Equal("persistentVolumeClaim", model.Kind);
        var (_, kept, excluded) = AddMistralRepo(c.Hub, Param(run, "repo-id"), 20);
        var executor = new PodmanStepExecutor(c.Tmp.Combine("cluster"), c.Secrets, c.SaDir) { RunId = "cached-1" };
        // the first pack-and-push attempt has a token the internal registry refuses (401): the task
        // fails and Tekton's retry (same PVC) uploads again, with the rotated token
        var tokenFile = Path.Combine(c.SaDir, "token");
        executor.BeforeAttempt = (task, attempt) =>
        {
            if (task == "pack-and-push")
            {
                File.WriteAllText(tokenFile, attempt == 0 ? "a-token-the-registry-refuses" : c.SaToken);
            }
        };

        var first = await RunAsync(run, executor);
        executor.BeforeAttempt = null;
        Assert.Equal(2, first.TaskRuns["pack-and-push"].Attempts);
        Assert.Contains("401", first.TaskRuns["pack-and-push"].Outcomes[0].Log);
        var digest = first.Results["IMAGE_DIGEST"];
        await AssertBothRegistriesHold(c, run, digest);
        long served = kept.Keys.Sum(c.Hub.Served);
        Assert.True(served >= kept.Values.Sum(b => (long)b.Length));

        executor.RunId = "cached-2";
        var second = await RunAsync(run, executor);
        Assert.Equal(digest, second.Results["IMAGE_DIGEST"]);
        Assert.Equal(served, kept.Keys.Sum(c.Hub.Served));
        foreach (var path in excluded)
        {
            Assert.Equal(0, c.Hub.Served(path));
        }
        var pushLog = string.Join("\n", second.TaskRuns["pack-and-push"].Outcomes.Select(o => o.Log));
        // both registries already hold every blob (HEAD only), and the layer record on the claim
        // spared reading the model files again
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Matches(pushLog, @" 0 uploaded \(0 B\)").Count);
        Assert.Matches(@"[^0-9.]0 B of model layers read", pushLog);
        var artifact = Assert.Single(c.ModelRegistry.Artifacts);
        Assert.Equal(digest, Property(artifact, "image_digest"));
        AssertNoSecretIn(second, c);
    }

    /// <summary>
    /// modelcar-build-direct as shipped (tekton/runs/modelcar-build-direct-quantized.yaml): one pod streams the Hub
    /// into both registries (no model volume at all), then register. Run twice on its layer-record claim: the
    /// second run downloads nothing and uploads nothing. Without the layer-record workspace the run still works
    /// and streams the files again. The image is the very one the default pipeline (download to
    /// a PVC, then pack-and-push) gives for the same repo.
    /// </summary>
    [Fact]
    public async Task Direct_run_as_shipped_streams_the_hub_into_both_registries_and_with_its_layer_record_a_rerun_downloads_nothing()
    {
        await using var c = await StartClusterAsync();
        var run = ShippedRun("modelcar-build-direct-quantized.yaml", c);
        Assert.Equal("modelcar-build-direct", run.PipelineRef);
        Assert.DoesNotContain(run.Workspaces, w => w.Name == "model");
        var recordClaim = run.Workspaces.Single(w => w.Name == "layer-record");
        Assert.Equal("persistentVolumeClaim", recordClaim.Kind);
        var (repo, kept, excluded) = AddMistralRepo(c.Hub, Param(run, "repo-id"), 30);
        var executor = new PodmanStepExecutor(c.Tmp.Combine("cluster"), c.Secrets, c.SaDir) { RunId = "direct-1" };

        var first = await RunAsync(run, executor);

        Assert.Equal(new[] { "hf-pack-and-push", "register" }.Order(), first.TaskRuns.Keys.Order());
        Assert.All(first.TaskRuns.Values, t => Assert.Equal(1, t.Attempts));
        var digest = first.Results["IMAGE_DIGEST"];
        Assert.Matches("^sha256:[0-9a-f]{64}$", digest);
        Assert.Equal(repo.Commit, first.Results["commit"]);
        Assert.Equal($"{c.Quay.HostPort}/{Param(run, "quay-repo")}@{digest}", first.Results["IMAGE_URL"]);
        await AssertBothRegistriesHold(c, run, digest);
        var quayRef = $"docker://{c.Quay.HostPort}/{Param(run, "quay-repo")}:{Param(run, "version-name")}";
        var index = await PeerTools.RunAsync("skopeo", ["inspect", "--raw", "--cert-dir", c.CertDir, "--authfile", c.QuayAuthFile, quayRef]);
        Assert.True(index.ExitCode == 0, index.ToString());
        Assert.Equal(["linux/amd64", "linux/arm64"], JsonNode.Parse(index.StdOut)!["manifests"]!.AsArray()
            .Select(m => m!["platform"]!["os"]!.GetValue<string>() + "/" + m["platform"]!["architecture"]!.GetValue<string>()).Order());

        // each kept file read once from the Hub, the excluded ones never
        foreach (var (path, bytes) in kept)
        {
            Assert.Equal(bytes.Length, c.Hub.Served(path));
        }
        foreach (var path in excluded)
        {
            Assert.Equal(0, c.Hub.Served(path));
        }
        // the Model Registry: the artifact with the commit (the task's HF_COMMIT), digest and platforms
        var artifact = Assert.Single(c.ModelRegistry.Artifacts);
        var uri = $"oci://{c.Quay.HostPort}/{Param(run, "quay-repo")}@{digest}";
        Assert.Equal(uri, artifact["uri"]!.GetValue<string>());
        Assert.Equal(uri, first.Results["model-uri"]);
        Assert.Equal(repo.Commit, Property(artifact, "hf_commit"));
        Assert.Equal(digest, Property(artifact, "image_digest"));
        Assert.Equal("linux/amd64,linux/arm64", Property(artifact, "platforms"));
        // the one volume holds the layer record alone: a few KB, no model bytes
        var claim = executor.PvcDir(recordClaim);
        var onClaim = Directory.GetFiles(claim, "*", SearchOption.AllDirectories);
        var record = Assert.Single(onClaim);
        Assert.Equal("layers.json", Path.GetFileName(record));
        Assert.True(new FileInfo(record).Length < 64 << 10, $"{record}: {new FileInfo(record).Length} bytes");
        AssertNoSecretIn(first, c);

        // the re-run on the same claim: HEAD requests only, not one file request to the Hub
        int fileRequests = c.Hub.Resolves.Count();
        executor.RunId = "direct-2";
        var second = await RunAsync(run, executor);
        Assert.Equal(digest, second.Results["IMAGE_DIGEST"]);
        Assert.Equal(fileRequests, c.Hub.Resolves.Count());
        var pushLog = string.Join("\n", second.TaskRuns["hf-pack-and-push"].Outcomes.Select(o => o.Log));
        Assert.Equal(2, System.Text.RegularExpressions.Regex.Matches(pushLog, @" 0 uploaded \(0 B\)").Count);
        Assert.Equal(digest, Property(Assert.Single(c.ModelRegistry.Artifacts), "image_digest"));
        AssertNoSecretIn(second, c);

        // without the workspace nothing is kept: HF_HOME is "" (unset), the record goes to the pod's HOME if that is
        // writable (podman gives /tmp, a tmpfs gone with the pod; CRI-O gives /, read-only: one warning), so the
        // files are streamed again; the same image
        long served = kept.Keys.Sum(c.Hub.Served);
        executor.RunId = "direct-3";
        var unbound = await RunAsync(run with { Workspaces = run.Workspaces.Where(w => w.Name != "layer-record").ToList() }, executor);
        Assert.Equal(digest, unbound.Results["IMAGE_DIGEST"]);
        Assert.Equal(2 * served, kept.Keys.Sum(c.Hub.Served));
        Assert.Single(Directory.GetFiles(claim, "*", SearchOption.AllDirectories));

        // the default pipeline (download to a PVC, then pack-and-push) gives the very same image
        executor.RunId = "default";
        var viaPvc = await RunAsync(ShippedRun("modelcar-build-quantized.yaml", c), executor);
        Assert.Equal(digest, viaPvc.Results["IMAGE_DIGEST"]);

        // asked for ModelPack too (formats: modelcar,modelpack; another version, as the Model Registry keeps one uri per
        // version): the index in both registries holds the very same platform manifests and one ModelPack manifest
        // (unknown/unknown) over the amd64 image's model layers
        executor.RunId = "direct-modelpack";
        var withModelPack = run with
        {
            Params = new Dictionary<string, ParamValue>(run.Params)
            {
                ["formats"] = ParamValue.Of("modelcar,modelpack"),
                ["version-name"] = ParamValue.Of("quantized-w4a16-2502"), // the runs' --version-pattern holds
            },
        };
        Assert.NotEqual(Param(run, "version-name"), Param(withModelPack, "version-name"));
        var both = await RunAsync(withModelPack, executor);
        var bothDigest = both.Results["IMAGE_DIGEST"];
        Assert.NotEqual(digest, bothDigest);
        await AssertBothRegistriesHold(c, withModelPack, bothDigest);
        var platformManifests = JsonNode.Parse(index.StdOut)!["manifests"]!.AsArray().Select(m => m!.ToJsonString()).Order().ToList();
        var baseIndex = await PeerTools.RunAsync("skopeo", ["inspect", "--raw", "--cert-dir", c.CertDir, "--authfile", c.QuayAuthFile, $"docker://{c.Quay.HostPort}/base/busybox@{c.BaseDigest}"]);
        Assert.True(baseIndex.ExitCode == 0, baseIndex.ToString());
        var baseAmd64 = await PeerTools.RunAsync("skopeo", ["inspect", "--raw", "--cert-dir", c.CertDir, "--authfile", c.QuayAuthFile,
            $"docker://{c.Quay.HostPort}/base/busybox@{AmdDigest(baseIndex.StdOut)}"]);
        Assert.True(baseAmd64.ExitCode == 0, baseAmd64.ToString());
        int baseLayers = JsonNode.Parse(baseAmd64.StdOut)!["layers"]!.AsArray().Count;
        foreach (var (repoRef, auth) in new[]
        {
            ($"docker://{c.Quay.HostPort}/{Param(run, "quay-repo")}", new[] { "--authfile", c.QuayAuthFile }),
            ($"docker://{c.Internal.HostPort}/{Param(run, "internal-repo")}", new[] { "--creds", "serviceaccount:" + c.SaToken }),
        })
        {
            var raw = await PeerTools.RunAsync("skopeo", ["inspect", "--raw", "--cert-dir", c.CertDir, .. auth, $"{repoRef}:{Param(withModelPack, "version-name")}"]);
            Assert.True(raw.ExitCode == 0, raw.ToString());
            Assert.Equal(bothDigest, Sha256Hex(raw.StdOut));
            var entries = JsonNode.Parse(raw.StdOut)!["manifests"]!.AsArray().Select(m => m!).ToList();
            var modelPack = Assert.Single(entries, m => m["artifactType"]?.GetValue<string>() == "application/vnd.cncf.model.manifest.v1+json");
            Assert.Equal("unknown", modelPack["platform"]!["os"]!.GetValue<string>());
            Assert.Equal("unknown", modelPack["platform"]!["architecture"]!.GetValue<string>());
            Assert.Equal("modelpack", modelPack["annotations"]!["io.opendatahub.modelcar.manifest.type"]!.GetValue<string>());
            // the platform entries are the default run's, byte for byte (same manifests, same digests)
            Assert.Equal(platformManifests, entries.Where(m => m != modelPack).Select(m => m.ToJsonString()).Order().ToList());
            var amd64 = await PeerTools.RunAsync("skopeo", ["inspect", "--raw", "--cert-dir", c.CertDir, .. auth, $"{repoRef}@{AmdDigest(raw.StdOut)}"]);
            Assert.True(amd64.ExitCode == 0, amd64.ToString());
            var modelLayers = JsonNode.Parse(amd64.StdOut)!["layers"]!.AsArray().Skip(baseLayers).Select(l => l!["digest"]!.GetValue<string>()).ToList();
            Assert.NotEmpty(modelLayers);
            var mp = await PeerTools.RunAsync("skopeo", ["inspect", "--raw", "--cert-dir", c.CertDir, .. auth, $"{repoRef}@{modelPack["digest"]!.GetValue<string>()}"]);
            Assert.True(mp.ExitCode == 0, mp.ToString());
            Assert.Equal(modelLayers, JsonNode.Parse(mp.StdOut)!["layers"]!.AsArray().Select(l => l!["digest"]!.GetValue<string>()).ToList());
        }
        Assert.Equal(2, c.ModelRegistry.Artifacts.Count);
        Assert.Contains(c.ModelRegistry.Artifacts, a => Property(a, "image_digest") == bothDigest);
    }

    /// <summary>The linux/amd64 manifest's digest in an image index.</summary>
    private static string AmdDigest(string indexJson) =>
        JsonNode.Parse(indexJson)!["manifests"]!.AsArray().Single(m => m!["platform"]?["os"]?.GetValue<string>() == "linux" && m["platform"]!["architecture"]!.GetValue<string>() == "amd64")!["digest"]!.GetValue<string>();
}
