using System.Net;
using Microsoft.Extensions.Logging.Abstractions;
using ModelCar.Common.Http;
using ModelCar.Oci;
using ModelCar.Registry;
using ModelCar.TestSupport;

namespace ModelCar.RegistryPush.Tests;

/// <summary>
/// The retry/resume policy (<see cref="RegistryBlobWriter"/>) against a fake <see cref="IBlobUploadOperations"/>:
/// no HTTP at all, the endpoints answer what each test needs, including lies.
/// </summary>
public sealed class UploadPolicyTests
{
    private static readonly HttpSettings Settings = new() { TlsVerify = true, RetryBaseDelay = TimeSpan.FromMilliseconds(1), StallTimeout = TimeSpan.FromSeconds(20) };

    private static readonly UploadOptions Options = new() { MaxRecoveries = 3, RetryBaseDelay = TimeSpan.FromMilliseconds(1) };

    /// <summary>Upload endpoints in memory; <see cref="PatchAnswer"/> may replace the answer to PATCH number n (1-based) after its body was read.</summary>
    private sealed class FakeOperations : IBlobUploadOperations
    {
        private readonly Dictionary<string, MemoryStream> _sessions = [];
        private int _patches;

        public List<string> Calls { get; } = [];
        public Func<int, UploadSession, UploadAnswer?> PatchAnswer { get; set; } = (_, _) => null;
        public Func<UploadSession, long, long> StatusLie { get; set; } = (_, held) => held;
        public byte[]? Final { get; private set; }

        public Task<UploadSession> StartAsync(CancellationToken ct)
        {
            var id = $"s{_sessions.Count + 1}";
            _sessions[id] = new MemoryStream();
            Calls.Add("POST " + id);
            return Task.FromResult(new UploadSession(new Uri("https://reg.example/uploads/" + id), 0));
        }

        public Task<MountResult> MountAsync(Digest digest, string fromRepository, CancellationToken ct) => throw new NotSupportedException();

        public Task<(UploadSession Session, long Offset)?> GetStatusAsync(UploadSession session, CancellationToken ct)
        {
            Calls.Add("GET " + Id(session));
            long held = _sessions[Id(session)].Length;
            return Task.FromResult<(UploadSession, long)?>((session, StatusLie(session, held)));
        }

        public async Task<UploadAnswer> UploadChunkAsync(UploadSession session, Func<HttpContent> body, Func<HttpStatusCode, string?>? hint, CancellationToken ct)
        {
            int n = ++_patches;
            Calls.Add("PATCH " + Id(session));
            using var content = body();
            using var received = new MemoryStream();
            await content.CopyToAsync(received, ct);
            if (PatchAnswer(n, session) is { } answer)
            {
                return answer;
            }
            var data = _sessions[Id(session)];
            data.Write(received.ToArray());
            return new UploadAnswer(UploadOutcome.Stored, session, data.Length);
        }

        public Task<UploadAnswer> CompleteAsync(UploadSession session, Digest digest, Func<HttpStatusCode, string?>? hint, CancellationToken ct)
        {
            Calls.Add("PUT " + Id(session));
            var bytes = _sessions[Id(session)].ToArray();
            if (Digest.Sha256(bytes) != digest)
            {
                return Task.FromResult(new UploadAnswer(UploadOutcome.Refused, session, Error: new HttpRequestException("DIGEST_INVALID"), ServerCode: "DIGEST_INVALID"));
            }
            Final = bytes;
            return Task.FromResult(new UploadAnswer(UploadOutcome.Stored, session));
        }

        public Task<bool> HasBlobAsync(Digest digest, long size, CancellationToken ct) => Task.FromResult(false);

        public Task CancelAsync(UploadSession session, string what)
        {
            Calls.Add("DELETE " + Id(session));
            return Task.CompletedTask;
        }

        private static string Id(UploadSession session) => session.Location.Segments[^1];
    }

    private static async Task<RegistryBlobWriter> PushAsync(FakeOperations fake, byte[] data)
    {
        var writer = await RegistryBlobWriter.OpenAsync(fake, Settings, "blob upload to reg.example/org/model", new MemoryBlob(data), Options,
            NullLogger.Instance, CancellationToken.None);
        await using (writer)
        {
            for (int i = 0; i < data.Length; i += 1000)
            {
                await writer.WriteAsync(data.AsMemory(i, Math.Min(1000, data.Length - i)), CancellationToken.None);
            }
            await writer.CommitAsync(Digest.Sha256(data), CancellationToken.None);
        }
        return writer;
    }

    [Fact]
    public async Task A_session_that_claims_more_bytes_than_were_sent_is_not_trusted_and_the_blob_starts_again()
    {
        var data = TempDir.RandomBytes(10_000, 90);
        var fake = new FakeOperations
        {
            // the first PATCH is answered 503; then the session claims to hold more than the whole blob
            PatchAnswer = (n, s) => n == 1 ? new UploadAnswer(UploadOutcome.Retry, s, Error: new HttpRequestException("503 Service Unavailable")) : null,
            StatusLie = (s, held) => s.Location.Segments[^1] == "s1" ? 10_001 : held,
        };
        var writer = await PushAsync(fake, data);
        Assert.Equal(data, fake.Final);
        Assert.Equal(2, writer.Sessions);
        Assert.Equal(["POST s1", "PATCH s1", "GET s1", "POST s2", "PATCH s2", "PUT s2"], fake.Calls);
    }

    [Fact]
    public async Task A_registry_that_keeps_failing_gives_up_with_the_one_transient_failure_and_cancels_the_session()
    {
        var data = TempDir.RandomBytes(5000, 91);
        var fake = new FakeOperations { PatchAnswer = (_, s) => new UploadAnswer(UploadOutcome.Retry, s, Error: new HttpRequestException("503 Service Unavailable")) };
        var e = await Assert.ThrowsAsync<BlobUploadException>(() => PushAsync(fake, data));
        Assert.True(e.IsTransient);
        Assert.Contains("failed 4 times in a row at byte 0 of 5000; last error: 503 Service Unavailable", e.Message);
        Assert.Equal("DELETE s1", fake.Calls[^1]);
        Assert.Null(fake.Final);
    }
}
