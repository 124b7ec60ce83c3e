using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using ModelCar.Common.Http;
using ModelCar.Oci;
using ModelCar.Registry;
using ModelCar.Registry.Auth;
using ModelCar.Signing.Verification;
using ModelCar.TestSupport;

namespace ModelCar.Signing.Tests;

/// <summary>
/// An in-memory registry (HttpMessageHandler level) that can lie: a manifest PUT answered 201 but not
/// stored, a blob served with other bytes, a signature copied from another digest or repository.
/// </summary>
public sealed class HostileRegistryTests
{
    private static readonly HttpSettings Settings = new() { TlsVerify = true, MaxRetries = 1, RetryBaseDelay = TimeSpan.FromMilliseconds(1) };

    internal sealed class MemoryRegistry
    {
        public ConcurrentDictionary<string, byte[]> Blobs { get; } = new();
        public ConcurrentDictionary<string, byte[]> Uploads { get; } = new();
        public ConcurrentDictionary<string, (string MediaType, byte[] Content)> Manifests { get; } = new();
        public bool DropManifestPuts { get; set; }
        public Func<string, byte[], byte[]> ServeBlob { get; set; } = (_, b) => b;

        /// <summary>GET /v2/NAME/referrers/DIGEST: null = no referrers API (404), else the answer (given the subject and the request).</summary>
        public Func<string, HttpRequestMessage, HttpResponseMessage>? ReferrersApi { get; set; }

        /// <summary>Answer a manifest PUT that has a subject with OCI-Subject (a registry with the referrers API).</summary>
        public bool SendOciSubject { get; set; }

        public ConcurrentQueue<string> Requests { get; } = new();

        /// <summary>What a registry with the referrers API would list for <paramref name="subject"/>: every stored manifest whose subject it is.</summary>
        public byte[] ReferrersOf(string subject)
        {
            var entries = Manifests.Where(m => m.Key.StartsWith("sha256:", StringComparison.Ordinal)).Select(m => m.Value).Distinct()
                .Select(m => (m.MediaType, m.Content, Doc: System.Text.Json.JsonDocument.Parse(m.Content)))
                .Where(m => m.Doc.RootElement.TryGetProperty("subject", out var s) && s.GetProperty("digest").GetString() == subject)
                .Select(m => new System.Text.Json.Nodes.JsonObject
                {
                    ["mediaType"] = m.MediaType,
                    ["digest"] = Digest.Sha256(m.Content).ToString(),
                    ["size"] = m.Content.Length,
                    ["artifactType"] = m.Doc.RootElement.TryGetProperty("artifactType", out var at) ? at.GetString() : null,
                    ["annotations"] = m.Doc.RootElement.TryGetProperty("annotations", out var a) ? System.Text.Json.Nodes.JsonNode.Parse(a.GetRawText()) : null,
                });
            var index = new System.Text.Json.Nodes.JsonObject { ["schemaVersion"] = 2, ["mediaType"] = MediaTypes.ImageIndex, ["manifests"] = new System.Text.Json.Nodes.JsonArray([.. entries]) };
            return Encoding.UTF8.GetBytes(index.ToJsonString());
        }

        public Task<HttpResponseMessage> Respond(HttpRequestMessage req, byte[]? body)
        {
            var path = req.RequestUri!.AbsolutePath;
            Requests.Enqueue($"{req.Method} {req.RequestUri}");
            if (path.Contains("/referrers/", StringComparison.Ordinal))
            {
                return ReferrersApi is { } api ? Task.FromResult(api(path[(path.LastIndexOf('/') + 1)..], req)) : Ok(HttpStatusCode.NotFound);
            }
            if (path == "/v2/")
            {
                return Ok(HttpStatusCode.OK);
            }
            // a blob upload is POST, PATCH (the bytes), PUT ?digest= (empty): the one upload of every blob
            if (path.StartsWith("/upload/", StringComparison.Ordinal) && req.Method == HttpMethod.Patch)
            {
                Uploads.AddOrUpdate(path, body ?? [], (_, held) => [.. held, .. body ?? []]);
                var r = new HttpResponseMessage(HttpStatusCode.Accepted);
                r.Headers.Location = req.RequestUri;
                return Task.FromResult(r);
            }
            if (path.StartsWith("/upload/", StringComparison.Ordinal) && req.Method == HttpMethod.Put)
            {
                var digest = System.Web.HttpUtility.ParseQueryString(req.RequestUri.Query)["digest"]!;
                Blobs[digest] = [.. Uploads.TryRemove(path, out var held) ? held : [], .. body ?? []];
                return Ok(HttpStatusCode.Created);
            }
            var parts = path.Split('/');
            int kind = Array.FindIndex(parts, p => p is "blobs" or "manifests");
            var reference = parts[^1];
            if (parts[kind] == "blobs" && parts[kind + 1] == "uploads")
            {
                var r = new HttpResponseMessage(HttpStatusCode.Accepted);
                r.Headers.Location = new Uri($"https://reg.example/upload/{Guid.NewGuid():N}");
                return Task.FromResult(r);
            }
            if (parts[kind] == "blobs")
            {
                if (!Blobs.TryGetValue(reference, out var blob))
                {
                    return Ok(HttpStatusCode.NotFound);
                }
                var served = ServeBlob(reference, blob);
                var r = new HttpResponseMessage(HttpStatusCode.OK) { Content = req.Method == HttpMethod.Head ? new ByteArrayContent([]) : new ByteArrayContent(served) };
                r.Content.Headers.ContentLength = served.Length;
                return Task.FromResult(r);
            }
            if (req.Method == HttpMethod.Put)
            {
                var digest = Digest.Sha256(body!).ToString();
                if (!DropManifestPuts)
                {
                    var entry = (req.Content!.Headers.ContentType!.MediaType!, body!);
                    Manifests[reference] = entry;
                    Manifests[digest] = entry;
                }
                var created = new HttpResponseMessage(HttpStatusCode.Created);
                created.Headers.TryAddWithoutValidation("Docker-Content-Digest", digest);
                if (SendOciSubject && System.Text.Json.JsonDocument.Parse(body!).RootElement.TryGetProperty("subject", out var subject))
                {
                    created.Headers.TryAddWithoutValidation("OCI-Subject", subject.GetProperty("digest").GetString());
                }
                return Task.FromResult(created);
            }
            if (!Manifests.TryGetValue(reference, out var m))
            {
                return Ok(HttpStatusCode.NotFound);
            }
            var resp = new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(req.Method == HttpMethod.Head ? [] : m.Content) };
            resp.Content.Headers.ContentType = new MediaTypeHeaderValue(m.MediaType);
            resp.Content.Headers.ContentLength = m.Content.Length; // a HEAD says the size, as a registry does
            resp.Headers.TryAddWithoutValidation("Docker-Content-Digest", Digest.Sha256(m.Content).ToString());
            return Task.FromResult(resp);
        }

        private static Task<HttpResponseMessage> Ok(HttpStatusCode code) => Task.FromResult(new HttpResponseMessage(code) { Content = new ByteArrayContent([]) });

        public string PutImage(string repository, byte[] marker)
        {
            var config = Encoding.UTF8.GetBytes("{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]},\"m\":\"" + Convert.ToHexString(marker) + "\"}");
            Blobs[Digest.Sha256(config).ToString()] = config;
            var manifest = Encoding.UTF8.GetBytes("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\""
                + Digest.Sha256(config) + "\",\"size\":" + config.Length + "},\"layers\":[]}");
            var digest = Digest.Sha256(manifest).ToString();
            Manifests[digest] = ("application/vnd.oci.image.manifest.v1+json", manifest);
            return digest;
        }
    }

    internal static RegistryRepository Repo(MemoryRegistry registry, string repository = "org/model")
    {
        var http = HttpClientFactory.Create(Settings, new FakeHttpHandler(registry.Respond));
        var client = new RegistryClient("reg.example", http, Settings, new AnonymousCredentialProvider(), NullLogger.Instance) { AuthRepository = repository };
        client.PingAsync(CancellationToken.None).GetAwaiter().GetResult();
        return new RegistryRepository(client, repository);
    }

    internal static SigningKey Key() => CosignKeys.LoadPrivateKey(Path.Combine(AppContext.BaseDirectory, "testdata", "cosign", "ecdsa_priv.pem"), () => []);

    [Fact]
    public async Task A_tag_PUT_answered_201_but_not_stored_is_not_reported_as_signed()
    {
        var registry = new MemoryRegistry();
        var digest = Digest.Parse(registry.PutImage("org/model", [1]));
        registry.DropManifestPuts = true;
        using var key = Key();
        var e = await Assert.ThrowsAsync<SigningException>(() => new ImageSigner(key, NullLogger.Instance).SignAsync(Repo(registry), digest, null, null, CancellationToken.None));
        Assert.Contains("does not have the tag", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_refuses_a_signature_blob_served_with_other_bytes()
    {
        var registry = new MemoryRegistry();
        var digest = Digest.Parse(registry.PutImage("org/model", [2]));
        using var key = Key();
        await new ImageSigner(key, NullLogger.Instance).SignAsync(Repo(registry), digest, null, null, CancellationToken.None);
        Assert.NotNull((await new ImageVerifier(Repo(registry), key.PublicKey).VerifyAsync(digest, false, null, CancellationToken.None)).Checked);
        var payloadDigest = Digest.Sha256(SimpleSigning.Create("reg.example/org/model", digest)).ToString();
        registry.ServeBlob = (d, b) => d == payloadDigest ? SimpleSigning.Create("reg.example/org/model", Digest.Sha256("other"u8)) : b;
        var e = await Assert.ThrowsAsync<SigningException>(() => new ImageVerifier(Repo(registry), key.PublicKey).VerifyAsync(digest, false, null, CancellationToken.None));
        Assert.Equal(SigningFailure.PayloadMismatch, e.Failure);
    }

    [Fact]
    public async Task Verify_refuses_a_signature_copied_from_another_digest_or_another_repository()
    {
        var registry = new MemoryRegistry();
        var signed = Digest.Parse(registry.PutImage("org/model", [3]));
        var other = Digest.Parse(registry.PutImage("org/model", [4]));
        using var key = Key();
        await new ImageSigner(key, NullLogger.Instance).SignAsync(Repo(registry), signed, null, null, CancellationToken.None);
        // the .sig of `signed` copied under `other`'s tag: valid signature, wrong digest
        registry.Manifests[CosignAttachments.Tag(other, "sig")] = registry.Manifests[CosignAttachments.Tag(signed, "sig")];
        var replay = await Assert.ThrowsAsync<SigningException>(() => new ImageVerifier(Repo(registry), key.PublicKey).VerifyAsync(other, false, null, CancellationToken.None));
        Assert.Contains("digest mismatch", replay.Message, StringComparison.Ordinal);
        // the same image and signature seen from another repository: matchRepository fails
        var elsewhere = await Assert.ThrowsAsync<SigningException>(() => new ImageVerifier(Repo(registry, "org/elsewhere"), key.PublicKey).VerifyAsync(signed, false, null, CancellationToken.None));
        Assert.Contains("matchRepository", elsewhere.Message, StringComparison.Ordinal);
        // and no attestation was pushed
        var noAtt = await Assert.ThrowsAsync<SigningException>(() => new ImageVerifier(Repo(registry), key.PublicKey).VerifyAsync(signed, true, null, CancellationToken.None));
        Assert.Equal(SigningFailure.AttestationMissing, noAtt.Failure);
    }
}
