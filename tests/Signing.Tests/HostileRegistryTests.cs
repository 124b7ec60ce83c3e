using Microsoft.Extensions.Logging.Abstractions;
using ModelCar.Common.Http;
using ModelCar.Oci;
using ModelCar.Registry;
using ModelCar.Registry.Auth;
using ModelCar.Signing.Verification;
using ModelCar.TestSupport;

namespace ModelCar.Signing.Tests;

/// <summary>
/// The hostile registry (TestSupport's <see cref="HostileRegistry"/>, in process at the HttpMessageHandler level) lies:
/// a manifest PUT answered 201 but not stored, a blob served with other bytes, a signature copied from another digest or repository.
/// </summary>
public sealed class HostileRegistryTests
{
    private static readonly HttpSettings Settings = new() { TlsVerify = true, MaxRetries = 1, RetryBaseDelay = TimeSpan.FromMilliseconds(1) };

    internal static RegistryRepository Repo(HostileRegistry registry, string repository = "org/model")
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
        var registry = new HostileRegistry();
        var digest = Digest.Parse(registry.PutImage("org/model", [1]));
        registry.DropManifests = true;
        using var key = Key();
        var e = await Assert.ThrowsAsync<SigningException>(() => new ImageSigner(key, NullLogger.Instance).SignAsync(Repo(registry), digest, null, null, CancellationToken.None));
        Assert.Contains("does not have the tag", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Verify_refuses_a_signature_blob_served_with_other_bytes()
    {
        var registry = new HostileRegistry();
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
        var registry = new HostileRegistry();
        var signed = Digest.Parse(registry.PutImage("org/model", [3]));
        var other = Digest.Parse(registry.PutImage("org/model", [4]));
        using var key = Key();
        await new ImageSigner(key, NullLogger.Instance).SignAsync(Repo(registry), signed, null, null, CancellationToken.None);
        // the .sig of `signed` copied under `other`'s tag: valid signature, wrong digest
        registry.Manifests["org/model@" + CosignAttachments.Tag(other, "sig")] = registry.Manifests["org/model@" + CosignAttachments.Tag(signed, "sig")];
        var replay = await Assert.ThrowsAsync<SigningException>(() => new ImageVerifier(Repo(registry), key.PublicKey).VerifyAsync(other, false, null, CancellationToken.None));
        Assert.Contains("digest mismatch", replay.Message, StringComparison.Ordinal);
        // the same image and signature seen from another repository: matchRepository fails
        registry.SharedRepositories = true;
        var elsewhere = await Assert.ThrowsAsync<SigningException>(() => new ImageVerifier(Repo(registry, "org/elsewhere"), key.PublicKey).VerifyAsync(signed, false, null, CancellationToken.None));
        Assert.Contains("matchRepository", elsewhere.Message, StringComparison.Ordinal);
        // and no attestation was pushed
        registry.SharedRepositories = false;
        var noAtt = await Assert.ThrowsAsync<SigningException>(() => new ImageVerifier(Repo(registry), key.PublicKey).VerifyAsync(signed, true, null, CancellationToken.None));
        Assert.Equal(SigningFailure.AttestationMissing, noAtt.Failure);
    }
}
