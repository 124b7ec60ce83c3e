using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;
using ModelCar.Common.Http;
using ModelCar.Oci;
using ModelCar.Registry;
using ModelCar.Registry.Auth;
using ModelCar.Signing.Verification;
using ModelCar.TestSupport;

namespace ModelCar.Signing.Tests;

/// <summary>
/// The join of a verified attestation with what the Model Registry recorded (digest, commit, model file
/// listing), and the verifier's registry reads asking for pull scope only.
/// </summary>
public sealed class ReleaseCheckTests
{
    private static readonly Digest Index = Digest.Sha256("index"u8);
    private static readonly string ShaA = new('a', 64);
    private static readonly string ShaB = new('b', 64);

    private static JsonDocument Statement(string? revision, params (string Path, string Sha)[] files)
    {
        var parameters = new Dictionary<string, object> { ["model"] = "hf://org/name@main" };
        if (revision is not null)
        {
            parameters["revision"] = revision;
        }
        return JsonDocument.Parse(InToto.Provenance(new ProvenanceFacts
        {
            Subjects = [("127.0.0.1:5000/ns/model", Index)],
            ModelFiles = files.Select(f => new ResourceDigest($"hf://org/name@{revision}/{f.Path}", f.Sha, f.Path)).ToList(),
            BaseImages = [("registry.access.redhat.com/ubi9/ubi-micro", Digest.Sha256("base"u8))],
            ExternalParameters = parameters,
            BuilderId = "https://tekton.dev/v1/TaskRun/modelcar-tools/oci-pack",
        }));
    }

    private static RecordedRelease Record(Digest? image, string? commit, Digest? files) => new("the Model Registry's 'm' version 'v' (artifact 7)", image, commit, files);

    [Fact]
    public void The_model_file_listing_digest_is_sha256sum_of_the_sorted_sha256sum_lines()
    {
        using var tmp = new TempDir();
        var files = new Dictionary<string, byte[]>
        {
            ["tokenizer.json"] = "{\"t\":2}"u8.ToArray(),
            ["config.json"] = "{\"a\":1}"u8.ToArray(),
            ["sub/weights.bin"] = TestImages.RandomLayers(17, 70_000)[0],
            ["Z-upper.txt"] = "z"u8.ToArray(),
        };
        foreach (var (path, content) in files)
        {
            Directory.CreateDirectory(Path.GetDirectoryName(tmp.Combine(path))!);
            File.WriteAllBytes(tmp.Combine(path), content);
        }
        var listing = ModelFileListing.Of(files.Select(f => (f.Key, TestImages.Sha256(f.Value)["sha256:".Length..])));
        // the judge: coreutils in the model directory, as the docs tell users to run it
        var psi = new System.Diagnostics.ProcessStartInfo("sh", ["-c", "sha256sum " + string.Join(' ', files.Keys) + " | LC_ALL=C sort -k2 | sha256sum"])
        {
            WorkingDirectory = tmp.Path,
            RedirectStandardOutput = true,
        };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.Equal(0, p.ExitCode);
        Assert.Equal("sha256:" + output.Split(' ')[0], listing.ToString());
    }

    [Fact]
    public void A_record_that_matches_passes_and_names_the_attested_files_without_the_base_image()
    {
        using var statement = Statement("c0ffee", ("config.json", ShaA), ("model.safetensors", ShaB));
        var listing = ModelFileListing.Of([("model.safetensors", ShaB), ("config.json", ShaA)]);
        var attested = ReleaseCheck.Check("127.0.0.1:5000/ns/model", Index, statement.RootElement, Record(Index, "c0ffee", listing));
        Assert.Equal("c0ffee", attested.Commit);
        Assert.Equal(["config.json", "model.safetensors"], attested.Files.Select(f => f.Path));
        Assert.Equal(listing, attested.FilesDigest);
    }

    [Fact]
    public void Each_disagreement_is_one_line_naming_what_differs()
    {
        using var statement = Statement("c0ffee", ("config.json", ShaA), ("model.safetensors", ShaB));
        var listing = ModelFileListing.Of([("config.json", ShaA), ("model.safetensors", ShaB)]);
        string Fail(RecordedRelease r) => Assert.Throws<SigningException>(() => ReleaseCheck.Check("h/r", Index, statement.RootElement, r)).Message;

        Assert.StartsWith("digest mismatch:", Fail(Record(Digest.Sha256("other"u8), "c0ffee", listing)), StringComparison.Ordinal);
        Assert.Contains("records no image digest", Fail(Record(null, "c0ffee", listing)), StringComparison.Ordinal);
        var commit = Fail(Record(Index, "deadbeef", listing));
        Assert.StartsWith("commit differs:", commit, StringComparison.Ordinal);
        Assert.Contains("c0ffee", commit, StringComparison.Ordinal);
        Assert.Contains("deadbeef", commit, StringComparison.Ordinal);
        Assert.StartsWith("commit differs:", Fail(Record(Index, null, listing)), StringComparison.Ordinal);
        // one file's digest changed (a weight swapped): the listing differs
        Assert.StartsWith("file digest differs:", Fail(Record(Index, "c0ffee", ModelFileListing.Of([("config.json", ShaA), ("model.safetensors", ShaA)]))), StringComparison.Ordinal);
        // a file more or less
        Assert.StartsWith("file digest differs:", Fail(Record(Index, "c0ffee", ModelFileListing.Of([("config.json", ShaA)]))), StringComparison.Ordinal);
        // nothing recorded to compare with: not a pass
        Assert.StartsWith("file digest differs:", Fail(Record(Index, "c0ffee", null)), StringComparison.Ordinal);
        Assert.All(new[] { Fail(Record(Index, "x", listing)), Fail(Record(Index, "c0ffee", null)) }, m => Assert.DoesNotContain('\n', m));
    }

    [Fact]
    public void An_attestation_without_model_files_or_with_a_malformed_one_fails()
    {
        using var empty = Statement("c0ffee");
        var e = Assert.Throws<SigningException>(() => ReleaseCheck.Check("h/r", Index, empty.RootElement, Record(Index, "c0ffee", ModelFileListing.Of(Array.Empty<(string, string)>()))));
        Assert.StartsWith("attestation missing:", e.Message, StringComparison.Ordinal);
        using var bad = JsonDocument.Parse("""{"predicate":{"buildDefinition":{"resolvedDependencies":[{"name":"a.bin","digest":{"sha256":"XYZ"}}]}}}""");
        Assert.Throws<SigningException>(() => ReleaseCheck.AttestedModelFiles(bad.RootElement));
        using var twice = JsonDocument.Parse("{\"predicate\":{\"buildDefinition\":{\"resolvedDependencies\":[{\"name\":\"a\",\"digest\":{\"sha256\":\"" + ShaA
            + "\"}},{\"name\":\"a\",\"digest\":{\"sha256\":\"" + ShaB + "\"}}]}}}");
        Assert.Contains("twice", Assert.Throws<SigningException>(() => ReleaseCheck.AttestedModelFiles(twice.RootElement)).Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// A token server that grants pull and refuses push (a deploy-side robot account): the verifier's HEADs and GETs
    /// of the image, its .sig and .att tags and blobs all ask for pull scope, so verification works with it.
    /// </summary>
    [Fact]
    public async Task The_verifier_asks_only_for_pull_scope()
    {
        var registry = new HostileRegistry();
        var digest = Digest.Parse(registry.PutImage("org/model", [9]));
        using var key = HostileRegistryTests.Key();
        await new ImageSigner(key, NullLogger.Instance).SignAsync(HostileRegistryTests.Repo(registry), digest,
            (identity, root, _) => InToto.Provenance(new ProvenanceFacts { Subjects = [(identity, root)], ModelFiles = [], ExternalParameters = new Dictionary<string, object>(), BuilderId = "b" }),
            InToto.SlsaProvenanceV1, CancellationToken.None);

        var scopes = new List<string>();
        const string Challenge = "Bearer realm=\"https://reg.example/token\",service=\"reg.example\"";
        async Task<HttpResponseMessage> Gate(HttpRequestMessage req, byte[]? body)
        {
            if (req.RequestUri!.AbsolutePath == "/token")
            {
                var scope = System.Web.HttpUtility.ParseQueryString(req.RequestUri.Query).GetValues("scope") ?? [];
                lock (scopes)
                {
                    scopes.AddRange(scope);
                }
                if (scope.Any(s => s.Split(':').Last().Split(',').Contains("push")))
                {
                    return new HttpResponseMessage(HttpStatusCode.Forbidden) { Content = new StringContent("{\"errors\":[{\"code\":\"DENIED\",\"message\":\"push not allowed\"}]}") };
                }
                return new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("{\"token\":\"pull-only\",\"expires_in\":300}", Encoding.UTF8, "application/json") };
            }
            if (req.Headers.Authorization?.ToString() != "Bearer pull-only")
            {
                var r = new HttpResponseMessage(HttpStatusCode.Unauthorized) { Content = new ByteArrayContent([]) };
                r.Headers.WwwAuthenticate.Add(AuthenticationHeaderValue.Parse(Challenge + ",scope=\"repository:org/model:pull\""));
                return r;
            }
            return await registry.Respond(req, body);
        }
        var settings = new HttpSettings { TlsVerify = true, MaxRetries = 1, RetryBaseDelay = TimeSpan.FromMilliseconds(1) };
        var http = HttpClientFactory.Create(settings, new FakeHttpHandler(Gate));
        var client = new RegistryClient("reg.example", http, settings, new AnonymousCredentialProvider(), NullLogger.Instance) { AuthRepository = "org/model" };
        await client.PingAsync(CancellationToken.None);
        var verified = await new ImageVerifier(new RegistryRepository(client, "org/model"), key.PublicKey).VerifyAsync(digest, true, InToto.SlsaProvenanceV1, CancellationToken.None);
        verified.Statement?.Dispose();
        Assert.NotEmpty(scopes);
        Assert.All(scopes, s => Assert.Equal("repository:org/model:pull", s));
    }
}
