using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Microsoft.Extensions.Logging.Abstractions;
using ModelCar.Common.Http;
using ModelCar.Oci;
using ModelCar.Registry;
using ModelCar.Registry.Auth;
using ModelCar.TestSupport;

namespace ModelCar.Registry.Tests;

/// <summary>Protocol logic against in-process fakes (FakeHttpHandler): no registry, no network.</summary>
public sealed class ProtocolUnitTests
{
    private static readonly HttpSettings Settings = new() { TlsVerify = true, MaxRetries = 3, RetryBaseDelay = TimeSpan.FromMilliseconds(1) };

    private static (RegistryRepository Repo, FakeHttpHandler Handler) Create(Func<HttpRequestMessage, byte[]?, Task<HttpResponseMessage>> respond,
        ICredentialProvider? credentials = null, string repository = "org/model")
    {
        var handler = new FakeHttpHandler(respond);
        var http = HttpClientFactory.Create(Settings, handler);
        var client = new RegistryClient("reg.example", http, Settings, credentials ?? new AnonymousCredentialProvider(), NullLogger.Instance) { AuthRepository = repository };
        return (new RegistryRepository(client, repository), handler);
    }

    private static HttpResponseMessage Accepted(string location, string? range = null, long? minChunk = null)
    {
        var r = new HttpResponseMessage(HttpStatusCode.Accepted);
        r.Headers.TryAddWithoutValidation("Location", location);
        if (range is not null)
        {
            r.Headers.TryAddWithoutValidation("Range", range);
        }
        if (minChunk is not null)
        {
            r.Headers.TryAddWithoutValidation("OCI-Chunk-Min-Length", minChunk.Value.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        return r;
    }

    [Theory]
    [InlineData("/v2/org/model/blobs/uploads/u1?_state=abc", "https://reg.example/v2/org/model/blobs/uploads/u1?_state=abc")]
    [InlineData("u2?_state=x%2By", "https://reg.example/v2/org/model/blobs/uploads/u2?_state=x%2By")]
    [InlineData("https://cdn.example/upload/u3?sig=1", "https://cdn.example/upload/u3?sig=1")]
    public void Location_is_resolved_against_the_request_url_keeping_its_query(string location, string expected)
    {
        using var response = Accepted(location);
        var resolved = RegistryClient.ResolveLocation(new Uri("https://reg.example/v2/org/model/blobs/uploads/"), response);
        Assert.Equal(expected, resolved.AbsoluteUri);
        var withDigest = RegistryClient.WithQuery(resolved, "digest", "sha256:" + new string('a', 64));
        Assert.EndsWith("&digest=sha256%3A" + new string('a', 64), withDigest.AbsoluteUri);
        Assert.Contains("?", withDigest.Query);
    }

    [Fact]
    public void Challenges_are_parsed_with_quoted_commas_and_several_schemes()
    {
        var bearer = Challenge.Parse("Bearer realm=\"https://auth.example/token\",service=\"registry.example\",scope=\"repository:a/b:pull,push\"")!;
        Assert.True(bearer.IsBearer);
        Assert.Equal("https://auth.example/token", bearer.Realm);
        Assert.Equal("registry.example", bearer.Service);
        Assert.Equal("repository:a/b:pull,push", bearer.Scope);

        var all = Challenge.ParseAll("Basic realm=\"Registry \\\"Realm\\\"\", Bearer realm=\"https://t\", service=svc");
        Assert.Equal(2, all.Count);
        Assert.True(all[0].IsBasic);
        Assert.Equal("Registry \"Realm\"", all[0].Realm);
        Assert.Equal("svc", all[1].Service);
    }

    [Fact]
    public void Auth_files_are_searched_in_containers_auth_json_order()
    {
        var env = new Dictionary<string, string?> { ["HOME"] = "/home/u", ["XDG_RUNTIME_DIR"] = "/run/user/1", ["DOCKER_CONFIG"] = "/dc" };
        var files = AuthFileLookup.CandidateFiles(null, k => env.GetValueOrDefault(k));
        Assert.Equal(["/run/user/1/containers/auth.json", "/home/u/.config/containers/auth.json", "/dc/config.json", "/home/u/.dockercfg"], files.Select(f => f.Path));
        Assert.All(files, f => Assert.False(f.Required)); // default locations are optional

        env.Remove("DOCKER_CONFIG");
        env["XDG_CONFIG_HOME"] = "/cfg";
        Assert.Equal(["/run/user/1/containers/auth.json", "/cfg/containers/auth.json", "/home/u/.docker/config.json", "/home/u/.dockercfg"],
            AuthFileLookup.CandidateFiles(null, k => env.GetValueOrDefault(k)).Select(f => f.Path));

        env["REGISTRY_AUTH_FILE"] = "/env/auth.json";
        Assert.Equal([new AuthFileCandidate("/env/auth.json", false, "REGISTRY_AUTH_FILE")], AuthFileLookup.CandidateFiles(null, k => env.GetValueOrDefault(k)));
        Assert.Equal([new AuthFileCandidate("/flag/auth.json", true), new AuthFileCandidate("/flag/.dockercfg", true)],
            AuthFileLookup.CandidateFiles(["/flag/auth.json", "", "/flag/.dockercfg"], k => env.GetValueOrDefault(k)));

        // an arbitrary UID in a pod: no HOME, so no home-relative files (and no guessing from the passwd database)
        Assert.Empty(AuthFileLookup.CandidateFiles(null, _ => null));

        Assert.Equal(["quay.io/org/team/repo", "quay.io/org/team", "quay.io/org", "quay.io"], AuthFileLookup.KeysFor("quay.io", "org/team/repo"));
        Assert.Equal("docker.io", AuthFileLookup.NormalizeKey("https://index.docker.io/v1/"));
        Assert.Equal("quay.io", AuthFileLookup.NormalizeKey("https://quay.io"));
        Assert.Equal("quay.io/org", AuthFileLookup.NormalizeKey("quay.io/org"));
    }

    [Fact]
    public void Most_specific_key_wins_then_later_files_and_cred_helpers_come_first()
    {
        using var tmp = new TempDir();
        static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));
        var first = tmp.WriteFile("first.json", $$$$"""{"auths":{"quay.io":{"auth":"{{{{B64("host:h")}}}}"},"quay.io/org/repo":{"auth":"{{{{B64("repo:r")}}}}"}}}""");
        var second = tmp.WriteFile("second.json", $$$"""{"auths":{"other.io":{"username":"u2","password":"p2"}},"credHelpers":{"helped.io":"fake"}}""");
        var legacy = tmp.WriteFile(".dockercfg", $$$"""{"https://legacy.io":{"auth":"{{{B64("old:o")}}}"}}""");
        var helperCalls = new List<string>();
        var lookup = new AuthFileLookup([new(first, false), new(tmp.Combine("missing.json"), false), new(second, false), new(legacy, false)], NullLogger.Instance,
            (helper, host) => { helperCalls.Add($"{helper}:{host}"); return """{"ServerURL":"helped.io","Username":"hu","Secret":"hs"}"""; });

        Assert.Equal(("repo", "r"), Pair(lookup.Get("quay.io", "org/repo")));
        Assert.Equal(("host", "h"), Pair(lookup.Get("quay.io", "org/other")));
        Assert.Equal(("u2", "p2"), Pair(lookup.Get("other.io", "x")));
        Assert.Equal(("hu", "hs"), Pair(lookup.Get("helped.io", "x")));
        Assert.Equal(["fake:helped.io"], helperCalls);
        Assert.Equal(("old", "o"), Pair(lookup.Get("legacy.io", "x")));
        Assert.Null(lookup.Get("nowhere.io", "x"));

        static (string, string) Pair(Credential? c) => (c!.Username, c.Password);
    }

    [Fact]
    public void Registry_error_bodies_become_one_line_with_the_server_code()
    {
        var entry = RegistryErrors.Parse("""{"errors":[{"code":"DENIED","message":"requested access to the resource is denied","detail":{"x":1}}]}""")!;
        Assert.Equal("DENIED", entry.Code);
        Assert.Equal("requested access to the resource is denied", entry.Message);
        Assert.Null(RegistryErrors.Parse("<html>nope</html>"));

        var response = FakeHttpHandler.Status(HttpStatusCode.RequestEntityTooLarge, """{"errors":[{"code":"SIZE_INVALID","message":"too big"}]}""");
        response.RequestMessage = new HttpRequestMessage(HttpMethod.Put, "https://reg.example/v2/a/blobs/uploads/u?digest=sha256:x&_state=secret");
        var ex = RegistryErrors.ToExceptionAsync(response, CancellationToken.None).GetAwaiter().GetResult();
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, ex.Status);
        Assert.Equal("SIZE_INVALID", ex.ServerCode);
        Assert.Contains("PUT https://reg.example/v2/a/blobs/uploads/u?digest=sha256:x&_state=***: 413", ex.Message);
        Assert.Contains("SIZE_INVALID: too big", ex.Message);
        // the library says what is wrong, typed; the command names the option to change
        Assert.DoesNotContain("--", ex.Message);
        Assert.Equal(RegistryReason.BodyTooLarge, ex.Reason);
        Assert.Contains("--chunk-size", ModelCar.Registry.Cli.RegistryOptions.Hints(ex));
    }

    /// <summary>A fake upload endpoint: keeps the bytes it received per session, answers Range, can fail on demand.</summary>
    private sealed class FakeUploads
    {
        public ConcurrentDictionary<string, MemoryStream> Sessions { get; } = new();
        public List<string> ContentRanges { get; } = [];
        public int Posts;
        public Func<int, string?> PatchFault { get; set; } = _ => null;
        public Func<int, string?> PutFault { get; set; } = _ => null;
        public CancellationTokenSource Cancel { get; } = new();
        public List<string> Deletes { get; } = [];
        public string? RetryAfter { get; set; }
        private int _puts;
        public long MinChunk { get; set; }
        public byte[]? Final;
        private int _patches;

        public async Task<HttpResponseMessage> Respond(HttpRequestMessage req, byte[]? body)
        {
            var path = req.RequestUri!.AbsolutePath;
            if (req.Method == HttpMethod.Post)
            {
                var id = $"s{Interlocked.Increment(ref Posts)}";
                Sessions[id] = new MemoryStream();
                return Accepted($"/v2/org/model/blobs/uploads/{id}?_state=0", minChunk: MinChunk > 0 ? MinChunk : null);
            }
            var sid = path[(path.LastIndexOf('/') + 1)..];
            if (!Sessions.TryGetValue(sid, out var data))
            {
                return FakeHttpHandler.Status(HttpStatusCode.NotFound, """{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"unknown"}]}""");
            }
            if (req.Method == HttpMethod.Patch)
            {
                int n = Interlocked.Increment(ref _patches);
                // a streamed body from byte 0 (one PATCH for the whole blob) carries no Content-Range: it appends
                var range = req.Content!.Headers.TryGetValues("Content-Range", out var ranges) ? ranges.Single() : null;
                lock (ContentRanges)
                {
                    ContentRanges.Add(range ?? "stream");
                }
                switch (PatchFault(n))
                {
                    case "cut":
                        throw new HttpRequestException("connection reset (fake)", new IOException("reset"));
                    case "dead":
                        return FakeHttpHandler.Status(HttpStatusCode.NotFound, """{"errors":[{"code":"BLOB_UPLOAD_INVALID","message":"upload resumed at wrong offset"}]}""");
                    case "503":
                        var unavailable = FakeHttpHandler.Status(HttpStatusCode.ServiceUnavailable);
                        if (RetryAfter is not null)
                        {
                            unavailable.Headers.TryAddWithoutValidation("Retry-After", RetryAfter);
                        }
                        return unavailable;
                    case "cancel":
                        // the process got SIGTERM while this PATCH was on its way: nothing reached the registry
                        Cancel.Cancel();
                        throw new OperationCanceledException(Cancel.Token);
                }
                long start = range is null ? data.Length : long.Parse(range.Split('-')[0], System.Globalization.CultureInfo.InvariantCulture);
                if (start != data.Length)
                {
                    return FakeHttpHandler.Status(HttpStatusCode.RequestedRangeNotSatisfiable);
                }
                data.Write(body!);
                return Accepted($"/v2/org/model/blobs/uploads/{sid}?_state={data.Length}", range: $"0-{data.Length - 1}");
            }
            if (req.Method == HttpMethod.Get)
            {
                var r = new HttpResponseMessage(HttpStatusCode.NoContent);
                // CNCF distribution answers an empty session with "0-0" (not "0--1")
                r.Headers.TryAddWithoutValidation("Range", $"0-{Math.Max(data.Length - 1, 0)}");
                r.Headers.TryAddWithoutValidation("Location", $"/v2/org/model/blobs/uploads/{sid}?_state={data.Length}");
                return r;
            }
            if (req.Method == HttpMethod.Delete)
            {
                lock (Deletes)
                {
                    Deletes.Add(sid);
                }
                Sessions.TryRemove(sid, out _);
                return FakeHttpHandler.Status(HttpStatusCode.NoContent);
            }
            if (req.Method == HttpMethod.Put && PutFault(Interlocked.Increment(ref _puts)) == "cancel")
            {
                data.Write(body.AsSpan(0, (body?.Length ?? 0) / 2)); // part of the body reached the registry
                Cancel.Cancel();
                throw new OperationCanceledException(Cancel.Token);
            }
            if (req.Method == HttpMethod.Put && PutFault(_puts) == "503")
            {
                return FakeHttpHandler.Status(HttpStatusCode.ServiceUnavailable);
            }
            if (req.Method == HttpMethod.Put)
            {
                if (body is { Length: > 0 })
                {
                    data.Write(body);
                }
                Final = data.ToArray();
                var digest = Digest.Sha256(Final).ToString();
                var expected = Uri.UnescapeDataString(req.RequestUri.Query.Split("digest=")[1]);
                if (digest != expected)
                {
                    return FakeHttpHandler.Status(HttpStatusCode.BadRequest, """{"errors":[{"code":"DIGEST_INVALID","message":"digest invalid"}]}""");
                }
                var r = new HttpResponseMessage(HttpStatusCode.Created);
                r.Headers.TryAddWithoutValidation("Docker-Content-Digest", digest);
                return r;
            }
            if (req.Method == HttpMethod.Head)
            {
                return FakeHttpHandler.Status(HttpStatusCode.NotFound);
            }
            await Task.CompletedTask;
            return FakeHttpHandler.Status(HttpStatusCode.MethodNotAllowed);
        }
    }

    private static async Task<(FakeUploads Fake, byte[] Data, List<long> Progress)> UploadChunked(int size, long chunk, Action<FakeUploads> setup)
    {
        var fake = new FakeUploads();
        setup(fake);
        var (repo, _) = Create(fake.Respond);
        repo.Client.UseBaseUri(new Uri("https://reg.example/"));
        var data = TempDir.RandomBytes(size, size);
        var blob = new Descriptor { MediaType = MediaTypes.Layer, Digest = Digest.Sha256(data), Size = data.Length };
        var uploader = new BlobUploader(repo, new UploadOptions { ChunkSize = chunk, RetryBaseDelay = TimeSpan.FromMilliseconds(1) }, NullLogger.Instance);
        var progress = new List<long>();
        await uploader.UploadAsync(blob, () => new MemoryStream(data), offset => new MemoryStream(data, (int)offset, data.Length - (int)offset), null,
            n => { lock (progress) { progress.Add(n); } }, CancellationToken.None);
        return (fake, data, progress);
    }

    [Fact]
    public async Task Chunked_upload_sends_inclusive_content_ranges_and_honours_the_minimum_chunk_length()
    {
        var (fake, data, progress) = await UploadChunked(10_000, 3000, f => f.MinChunk = 4000);
        Assert.Equal(["0-3999", "4000-7999", "8000-9999"], fake.ContentRanges);
        Assert.Equal(data, fake.Final);
        Assert.Equal(10_000, progress.Sum());
    }

    /// <summary>Counts the bytes read through it.</summary>
    private sealed class CountingStream(Stream inner, Action<int> counted) : ModelCar.Common.IO.ReadOnlyWrapperStream(inner)
    {
        public override int Read(Span<byte> buffer)
        {
            int n = Inner.Read(buffer);
            counted(n);
            return n;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            int n = await Inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            counted(n);
            return n;
        }
    }

    [Fact]
    public async Task A_chunked_upload_reads_the_source_once_in_order_and_after_a_cut_only_the_lost_bytes_again()
    {
        // an oci-archive source cannot seek: every open at an offset reads (and drops) the bytes before it,
        // so a chunked upload must not reopen the source per chunk
        var fake = new FakeUploads { PatchFault = n => n == 2 ? "cut" : null };
        var (repo, _) = Create(fake.Respond);
        repo.Client.UseBaseUri(new Uri("https://reg.example/"));
        var data = TempDir.RandomBytes(10_000, 81);
        var blob = new Descriptor { MediaType = MediaTypes.Layer, Digest = Digest.Sha256(data), Size = data.Length };
        var uploader = new BlobUploader(repo, new UploadOptions { ChunkSize = 3000, RetryBaseDelay = TimeSpan.FromMilliseconds(1) }, NullLogger.Instance);
        var opens = new List<long>();
        long read = 0;
        // the one read from byte 0 goes through the source's verifying stream (the copy engine: nothing is committed
        // unverified); only the bytes a cut lost are read again, raw, from their offset
        await uploader.UploadAsync(blob, () =>
            {
                lock (opens)
                {
                    opens.Add(-1);
                }
                return new CountingStream(new MemoryStream(data), n => Interlocked.Add(ref read, n));
            },
            offset =>
            {
                lock (opens)
                {
                    opens.Add(offset);
                }
                return new CountingStream(new MemoryStream(data, (int)offset, data.Length - (int)offset), n => Interlocked.Add(ref read, n));
            }, null, _ => { }, CancellationToken.None);
        Assert.Equal(data, fake.Final);
        Assert.Equal(["0-2999", "3000-5999", "3000-5999", "6000-8999", "9000-9999"], fake.ContentRanges);
        // one sequential read of the whole source, then one re-read of the chunk the cut lost
        Assert.Equal([-1L, 3000L], opens);
        Assert.Equal(10_000 + 3000, Interlocked.Read(ref read));
    }

    [Fact]
    public async Task A_cut_chunk_resumes_from_the_registry_range_and_resends_only_that_chunk()
    {
        var (fake, data, progress) = await UploadChunked(10_000, 3000, f => f.PatchFault = n => n == 2 ? "cut" : n == 4 ? "503" : null);
        Assert.Equal(["0-2999", "3000-5999", "3000-5999", "6000-8999", "6000-8999", "9000-9999"], fake.ContentRanges);
        Assert.Equal(1, fake.Posts);
        Assert.Equal(data, fake.Final);
        Assert.Equal(10_000, progress.Sum());
    }

    [Theory]
    [InlineData("503")]
    [InlineData("cut")]
    public async Task A_failure_on_the_first_patch_resumes_from_byte_zero_of_an_empty_session(string fault)
    {
        // the session is empty: GET answers "Range: 0-0", which is 0 bytes stored, not 1
        var (fake, data, progress) = await UploadChunked(10_000, 3000, f => f.PatchFault = n => n == 1 ? fault : null);
        Assert.Equal(["0-2999", "0-2999", "3000-5999", "6000-8999", "9000-9999"], fake.ContentRanges);
        Assert.Equal(1, fake.Posts);
        Assert.Equal(data, fake.Final);
        Assert.Equal(10_000, progress.Sum());
    }

    private static async Task<List<long>> Upload(FakeUploads fake, byte[] data, long? chunk, UploadStateStore? state)
    {
        var (repo, _) = Create(fake.Respond);
        repo.Client.UseBaseUri(new Uri("https://reg.example/"));
        var blob = new Descriptor { MediaType = MediaTypes.Layer, Digest = Digest.Sha256(data), Size = data.Length };
        var options = new UploadOptions { ChunkSize = chunk, RetryBaseDelay = TimeSpan.FromMilliseconds(1) };
        var uploader = new BlobUploader(repo, options, NullLogger.Instance, state);
        var progress = new List<long>();
        await uploader.UploadAsync(blob, () => new MemoryStream(data), offset => new MemoryStream(data, (int)offset, data.Length - (int)offset), null,
            n => { lock (progress) { progress.Add(n); } }, fake.Cancel.Token);
        return progress;
    }

    [Fact]
    public async Task A_cancelled_chunked_upload_is_recorded_and_the_next_run_continues_from_the_registry_offset()
    {
        using var tmp = new TempDir();
        var state = UploadStateStore.Open(tmp.Combine("registry-push-state.json"), NullLogger.Instance);
        var data = TempDir.RandomBytes(10_000, 77);
        var first = new FakeUploads { PatchFault = n => n == 3 ? "cancel" : null };
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Upload(first, data, 3000, state));
        Assert.Empty(first.Deletes); // recorded: kept for the next run
        var record = state.Find("reg.example", "org/model", Digest.Sha256(data))!;
        Assert.Equal(6000, record.Offset);
        Assert.Contains("/uploads/s1", record.Location);

        // the next run (a new process: same registry, same state file)
        var second = new FakeUploads();
        foreach (var (k, v) in first.Sessions)
        {
            second.Sessions[k] = v;
        }
        var progress = await Upload(second, data, 3000, state);
        Assert.Equal(["6000-8999", "9000-9999"], second.ContentRanges);
        Assert.Equal(0, second.Posts);
        Assert.Equal(data, second.Final);
        Assert.Equal(10_000, progress.Sum());
        Assert.Null(state.Find("reg.example", "org/model", Digest.Sha256(data)));
        Assert.False(File.Exists(state.Path));
    }

    [Fact]
    public async Task A_recorded_session_that_is_gone_falls_back_to_a_fresh_upload()
    {
        using var tmp = new TempDir();
        var state = UploadStateStore.Open(tmp.Combine("registry-push-state.json"), NullLogger.Instance);
        var data = TempDir.RandomBytes(9000, 78);
        var first = new FakeUploads { PatchFault = n => n == 2 ? "cancel" : null };
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Upload(first, data, 3000, state));
        Assert.NotNull(state.Find("reg.example", "org/model", Digest.Sha256(data)));
        var second = new FakeUploads(); // the registry purged the session: GET answers 404 BLOB_UPLOAD_UNKNOWN
        await Upload(second, data, 3000, state);
        Assert.Equal(1, second.Posts);
        Assert.Equal(["0-2999", "3000-5999", "6000-8999"], second.ContentRanges);
        Assert.Equal(data, second.Final);
    }

    [Fact]
    public async Task Cancelling_a_session_that_cannot_be_resumed_deletes_it()
    {
        var data = TempDir.RandomBytes(9000, 79);
        // monolithic: a cut PUT can never be continued
        var mono = new FakeUploads { PutFault = n => n == 1 ? "cancel" : null };
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Upload(mono, data, null, null));
        Assert.Equal(["s1"], mono.Deletes);
        Assert.Empty(mono.Sessions);
        // chunked without a state store: nothing would resume it either
        var chunked = new FakeUploads { PatchFault = n => n == 2 ? "cancel" : null };
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Upload(chunked, data, 3000, null));
        Assert.Equal(["s1"], chunked.Deletes);
    }

    [Fact]
    public async Task A_retry_after_beyond_the_cap_on_a_patch_fails_the_blob_at_once()
    {
        var data = TempDir.RandomBytes(9000, 80);
        var fake = new FakeUploads { PatchFault = n => n == 1 ? "503" : null, RetryAfter = "100000" };
        // the chunked path is the blob writer: its typed failure (transient) carries the server's request (the CLI's hint finds it)
        var e = await Assert.ThrowsAsync<BlobUploadException>(() => Upload(fake, data, 3000, null));
        Assert.True(e.IsTransient);
        Assert.IsType<ModelCar.Common.Http.RetryWaitTooLongException>(e.InnerException);
        Assert.Contains("503 Service Unavailable: the server asks to wait 100000 s before retrying, more than the 60 s limit", e.Message);
        Assert.Single(fake.ContentRanges);
        Assert.Equal(["s1"], fake.Deletes); // and the session is not left behind
    }

    [Theory]
    [InlineData(null)]
    [InlineData(3000L)]
    public async Task Giving_up_after_retries_is_one_transient_BlobUploadException_on_the_monolithic_and_the_chunked_path(long? chunk)
    {
        // one rule for "the registry kept failing until the budget was spent": transient (a later run may succeed), exit code 1
        var data = TempDir.RandomBytes(9000, 82);
        var fake = new FakeUploads { PatchFault = _ => "503", PutFault = _ => "503" };
        var e = await Assert.ThrowsAsync<BlobUploadException>(() => Upload(fake, data, chunk, null));
        Assert.True(e.IsTransient);
        Assert.Matches(@"failed \d+ times.*; last error: 503", e.Message);
        Assert.Equal(ModelCar.Common.Cli.ExitCodes.Failure, ModelCar.Common.Cli.ToolApp.ExitCodeOf(e));
        Assert.NotEmpty(fake.Deletes); // no session left behind
    }

    [Fact]
    public async Task A_dead_upload_session_restarts_the_blob_with_a_new_post()
    {
        var (fake, data, _) = await UploadChunked(9000, 3000, f => f.PatchFault = n => n == 3 ? "dead" : null);
        Assert.Equal(2, fake.Posts);
        Assert.Equal(["0-2999", "3000-5999", "6000-8999", "0-2999", "3000-5999", "6000-8999"], fake.ContentRanges);
        Assert.Equal(data, fake.Final);
    }

    [Fact]
    public async Task Bearer_tokens_are_fetched_once_per_scope_and_basic_credentials_go_to_the_realm()
    {
        int tokenRequests = 0;
        var seenAuth = new ConcurrentQueue<string>();
        var (repo, handler) = Create(async (req, _) =>
        {
            await Task.CompletedTask;
            if (req.RequestUri!.Host == "auth.example")
            {
                Interlocked.Increment(ref tokenRequests);
                seenAuth.Enqueue(req.Headers.Authorization?.ToString() ?? "none");
                Assert.Contains("service=reg.example", req.RequestUri.Query);
                var scope = Uri.UnescapeDataString(req.RequestUri.Query.Split("scope=")[1]);
                return FakeHttpHandler.Status(HttpStatusCode.OK, $$"""{"token":"tok-{{scope}}","expires_in":3600}""");
            }
            var auth = req.Headers.Authorization?.ToString();
            if (auth is null || !auth.StartsWith("Bearer tok-", StringComparison.Ordinal))
            {
                var r = new HttpResponseMessage(HttpStatusCode.Unauthorized);
                r.Headers.TryAddWithoutValidation("WWW-Authenticate", "Bearer realm=\"https://auth.example/token\",service=\"reg.example\"");
                return r;
            }
            return FakeHttpHandler.Status(HttpStatusCode.OK);
        }, new ExplicitCredentialProvider("me", "pw-123456", null));
        repo.Client.UseBaseUri(new Uri("https://reg.example/"));
        for (int i = 0; i < 3; i++)
        {
            Assert.True(await repo.BlobExistsAsync(Digest.Sha256([(byte)i]), CancellationToken.None));
        }
        Assert.Equal(1, tokenRequests);
        Assert.True(await repo.BlobExistsAsync(Digest.Sha256([9]), CancellationToken.None, scope: "repository:org/model:pull"));
        Assert.Equal(2, tokenRequests);
        Assert.All(seenAuth, a => Assert.Equal("Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("me:pw-123456")), a));
        // the first request learned the challenge (one 401), everything after carried a token
        Assert.Single(handler.Calls, c => c.Uri.Host == "reg.example" && c.Headers.ContainsKey("Authorization") is false);
    }

    [Fact]
    public async Task A_wrong_basic_password_costs_two_requests_and_no_retries()
    {
        var (repo, handler) = Create((req, _) =>
        {
            var r = new HttpResponseMessage(HttpStatusCode.Unauthorized);
            r.Headers.TryAddWithoutValidation("WWW-Authenticate", "Basic realm=\"x\"");
            return Task.FromResult(r);
        }, new ExplicitCredentialProvider("me", "wrong-pass", null));
        repo.Client.UseBaseUri(new Uri("https://reg.example/"));
        int before = handler.Calls.Count;
        var ex = await Assert.ThrowsAsync<HttpFailureException>(() => repo.BlobExistsAsync(Digest.Sha256([1]), CancellationToken.None));
        Assert.Equal(HttpStatusCode.Unauthorized, ex.Status);
        Assert.Equal(2, handler.Calls.Count - before);
    }

    [Fact]
    public async Task Blob_downloads_follow_redirects_without_sending_credentials_to_another_host()
    {
        var data = TempDir.RandomBytes(5000, 5);
        var digest = Digest.Sha256(data);
        var (repo, handler) = Create((req, _) =>
        {
            if (req.RequestUri!.Host == "cdn.example")
            {
                return Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(data) });
            }
            if (req.Headers.Authorization is null)
            {
                var challenge = new HttpResponseMessage(HttpStatusCode.Unauthorized);
                challenge.Headers.TryAddWithoutValidation("WWW-Authenticate", "Basic realm=\"r\"");
                return Task.FromResult(challenge);
            }
            var redirect = new HttpResponseMessage(HttpStatusCode.TemporaryRedirect);
            redirect.Headers.TryAddWithoutValidation("Location", "https://cdn.example/blobs/x?X-Amz-Signature=abc");
            return Task.FromResult(redirect);
        }, new ExplicitCredentialProvider("me", "pw-123456", null));
        repo.Client.UseBaseUri(new Uri("https://reg.example/"));
        var source = new RegistryImageSource(repo.Client, RegistryReference.Parse("reg.example/org/model:v1"));
        using var stream = source.OpenVerified(new Descriptor { MediaType = MediaTypes.Layer, Digest = digest, Size = data.Length });
        var ms = new MemoryStream();
        await stream.CopyToAsync(ms);
        Assert.Equal(data, ms.ToArray());
        var cdn = Assert.Single(handler.Calls, c => c.Uri.Host == "cdn.example");
        Assert.False(cdn.Headers.ContainsKey("Authorization"));
        Assert.Contains(handler.Calls, c => c.Uri.Host == "reg.example" && c.Headers.ContainsKey("Authorization"));
    }

    [Fact]
    public void Blobs_over_10_GiB_go_chunked_by_default_and_chunk_size_forces_chunks()
    {
        var defaults = new UploadOptions();
        Assert.Null(defaults.ChunkSizeFor(10L << 30));
        Assert.Equal(1L << 30, defaults.ChunkSizeFor((10L << 30) + 1));
        var forced = new UploadOptions { ChunkSize = 64 << 20 };
        Assert.Null(forced.ChunkSizeFor(64 << 20));
        Assert.Equal(64 << 20, forced.ChunkSizeFor((64 << 20) + 1));
    }

    [Fact]
    public async Task A_401_mid_push_re_reads_the_rotated_password_file_and_continues()
    {
        using var tmp = new TempDir();
        var file = tmp.WriteFile("token", "first-token-111\n");
        var accepted = "first-token-111";
        var (repo, handler) = Create((req, _) =>
        {
            var expected = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("sa:" + Volatile.Read(ref accepted)));
            if (req.Headers.Authorization?.ToString() != expected)
            {
                var r = new HttpResponseMessage(HttpStatusCode.Unauthorized);
                r.Headers.TryAddWithoutValidation("WWW-Authenticate", "Basic realm=\"r\"");
                return Task.FromResult(r);
            }
            return Task.FromResult(FakeHttpHandler.Status(HttpStatusCode.OK));
        }, new ExplicitCredentialProvider("sa", null, file));
        repo.Client.UseBaseUri(new Uri("https://reg.example/"));
        Assert.True(await repo.BlobExistsAsync(Digest.Sha256([1]), CancellationToken.None));

        // the kubelet rotates the token: the registry now only accepts the new one
        File.WriteAllText(file, "second-token-222\n");
        Volatile.Write(ref accepted, "second-token-222");
        int before = handler.Calls.Count;
        Assert.True(await repo.BlobExistsAsync(Digest.Sha256([2]), CancellationToken.None));
        Assert.Equal(2, handler.Calls.Count - before); // one 401, one success with the re-read token
        Assert.True(await repo.BlobExistsAsync(Digest.Sha256([3]), CancellationToken.None));
        Assert.Equal(3, handler.Calls.Count - before);
    }
}
