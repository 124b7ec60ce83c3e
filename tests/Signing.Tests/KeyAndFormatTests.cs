using System.Text;
using ModelCar.Oci;
using ModelCar.Signing;
using ModelCar.Signing.Verification;
using ModelCar.TestSupport;

namespace ModelCar.Signing.Tests;

/// <summary>Keys, signatures and payloads, judged by cosign's and sigstore's own test material and by openssl.</summary>
public class KeyAndFormatTests
{
    private static string Data(string name) => Path.Combine(AppContext.BaseDirectory, "testdata", "cosign", name);

    private static byte[] Hello() => Encoding.UTF8.GetBytes(File.ReadAllText(Data("password.txt")));

    [Theory]
    [InlineData("pemcosignkey.key")]   // ENCRYPTED COSIGN PRIVATE KEY, N=32768
    [InlineData("pemsigstorekey.key")] // ENCRYPTED SIGSTORE PRIVATE KEY, N=32768
    public void Cosigns_encrypted_keys_open_with_cosigns_password_and_sign_what_openssl_verifies(string file)
    {
        Assert.StartsWith("hello", File.ReadAllText(Data("password.txt")), StringComparison.Ordinal);
        using var key = CosignKeys.LoadPrivateKey(Data(file), Hello);
        var message = Encoding.UTF8.GetBytes("{\"critical\":{}}");
        var signature = key.Sign(message);
        Assert.True(key.PublicKey.Verify(message, signature));
        Assert.False(key.PublicKey.Verify(Encoding.UTF8.GetBytes("{\"critical\":{ }}"), signature));
        Assert.Equal(0x30, signature[0]); // DER SEQUENCE
        Assert.True(OpensslVerifies(key.PublicKey.Pem, message, signature));
    }

    [Fact]
    public void A_wrong_password_is_WrongPassword_and_the_message_holds_no_secret()
    {
        var e = Assert.Throws<SigningException>(() => CosignKeys.LoadPrivateKey(Data("pemsigstorekey.key"), () => Encoding.UTF8.GetBytes("hellO-wrong")));
        Assert.Equal(SigningFailure.WrongPassword, e.Failure);
        Assert.False(e.IsInvalidInput);
        Assert.DoesNotContain("hellO-wrong", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("eyJr", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Cosigns_N65536_key_decrypts_but_holds_SEC1_which_cosign_refuses_too()
    {
        // decryption at N=65536 works (a wrong password would say WrongPassword); the content is not PKCS#8
        var e = Assert.Throws<SigningException>(() => CosignKeys.LoadPrivateKey(Data("pemcosigneckey.key"), Hello));
        Assert.Equal(SigningFailure.UnsupportedKey, e.Failure);
        Assert.Contains("PKCS#8", e.Message, StringComparison.Ordinal);
        var wrong = Assert.Throws<SigningException>(() => CosignKeys.LoadPrivateKey(Data("pemcosigneckey.key"), () => "nope"u8.ToArray()));
        Assert.Equal(SigningFailure.WrongPassword, wrong.Failure);
    }

    [Theory]
    [InlineData(32768)]
    [InlineData(65536)]
    [InlineData(131072)]
    public void Every_scrypt_N_cosign_writes_round_trips(int n)
    {
        using var plain = CosignKeys.LoadPrivateKey(Data("validecpkcs8.key"), () => throw new InvalidOperationException("a plain key needs no password"));
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "cosign.key");
        File.WriteAllText(path, CosignKeys.EncryptToPem(PlainPkcs8(), "pw"u8.ToArray(), n));
        using var key = CosignKeys.LoadPrivateKey(path, () => "pw"u8.ToArray());
        Assert.Equal(plain.PublicKey.Fingerprint, key.PublicKey.Fingerprint);
    }

    [Fact]
    public void An_scrypt_N_outside_cosigns_set_is_refused_before_any_work()
    {
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "cosign.key");
        File.WriteAllText(path, CosignKeys.EncryptToPem(PlainPkcs8(), "pw"u8.ToArray(), 16384));
        var e = Assert.Throws<SigningException>(() => CosignKeys.LoadPrivateKey(path, () => "pw"u8.ToArray()));
        Assert.Equal(SigningFailure.UnsupportedKey, e.Failure);
        Assert.Contains("N=16384", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("validecp384.key", "P-384")]
    [InlineData("ed25519.key", "Ed25519")]
    public void Keys_that_are_not_EC_P256_are_invalid_input(string file, string named)
    {
        var e = Assert.Throws<SigningException>(() => CosignKeys.LoadPrivateKey(Data(file), () => []));
        Assert.Equal(SigningFailure.UnsupportedKey, e.Failure);
        Assert.True(e.IsInvalidInput);
        Assert.Contains(named, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_encrypted_RSA_key_is_invalid_input()
    {
        using var rsa = System.Security.Cryptography.RSA.Create(2048);
        using var dir = new TempDir();
        var path = Path.Combine(dir.Path, "rsa.key");
        File.WriteAllText(path, CosignKeys.EncryptToPem(rsa.ExportPkcs8PrivateKey(), "pw"u8.ToArray(), 32768));
        var e = Assert.Throws<SigningException>(() => CosignKeys.LoadPrivateKey(path, () => "pw"u8.ToArray()));
        Assert.True(e.IsInvalidInput);
        Assert.Contains("RSA", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_missing_key_file_is_KeyFile()
    {
        var e = Assert.Throws<SigningException>(() => CosignKeys.LoadPrivateKey("/nonexistent/cosign.key", () => []));
        Assert.Equal(SigningFailure.KeyFile, e.Failure);
        Assert.False(e.IsInvalidInput);
    }

    [Fact]
    public void Sigstores_own_ECDSA_signatures_verify_and_a_changed_message_does_not()
    {
        using var pub = CosignKeys.LoadPublicKey(Data("ecdsa_pub.pem"));
        var message = File.ReadAllBytes(Data("ecdsa_message.txt"));
        var der = Convert.FromBase64String(File.ReadAllText(Data("ecdsa_message.sig.b64")));
        var ieee = Convert.FromBase64String(File.ReadAllText(Data("ecdsa_message.ieee.sig.b64")));
        Assert.True(pub.Verify(message, der));
        Assert.True(pub.Verify(message, ieee));
        Assert.False(pub.Verify("sign me!"u8, der));
        // and their private key is the pair of that public key: what we sign with it, openssl and their public key accept
        using var priv = CosignKeys.LoadPrivateKey(Data("ecdsa_priv.pem"), () => []);
        Assert.Equal(pub.Fingerprint, priv.PublicKey.Fingerprint);
        var payload = SimpleSigning.Create("registry.example/ns/model", Digest.Sha256("x"u8));
        var ours = priv.Sign(payload);
        Assert.True(pub.Verify(payload, ours));
        Assert.True(OpensslVerifies(File.ReadAllText(Data("ecdsa_pub.pem")), payload, ours));
        Assert.False(OpensslVerifies(File.ReadAllText(Data("ecdsa_pub.pem")), [.. payload, (byte)' '], ours));
    }

    [Fact]
    public void The_payload_has_exactly_the_keys_containers_image_requires()
    {
        var digest = Digest.Sha256("image"u8);
        var payload = SimpleSigning.Create("127.0.0.1:5000/ns/model", digest);
        Assert.Equal($"{{\"critical\":{{\"identity\":{{\"docker-reference\":\"127.0.0.1:5000/ns/model\"}},\"image\":{{\"docker-manifest-digest\":\"{digest}\"}},\"type\":\"cosign container image signature\"}},\"optional\":null}}",
            Encoding.UTF8.GetString(payload));
        var (parsed, error) = SigstorePayloadRules.Parse(payload);
        Assert.Null(error);
        Assert.Equal(digest, parsed!.ManifestDigest);
        Assert.True(SigstorePayloadRules.MatchRepository(parsed.DockerReference, "127.0.0.1:5000/ns/model"));
        Assert.True(SigstorePayloadRules.MatchRepository("127.0.0.1:5000/ns/model:v1", "127.0.0.1:5000/ns/model"));
        Assert.False(SigstorePayloadRules.MatchRepository(parsed.DockerReference, "127.0.0.1:5000/ns/other"));
        // what c/image refuses
        foreach (var bad in new[]
        {
            "{\"critical\":{\"identity\":{\"docker-reference\":\"h/r\"},\"image\":{\"docker-manifest-digest\":\"" + digest + "\"},\"type\":\"cosign container image signature\"}}",
            "{\"critical\":{\"identity\":{\"docker-reference\":\"h/r\"},\"image\":{\"docker-manifest-digest\":\"" + digest + "\"},\"type\":\"cosign container image signature\",\"x\":1},\"optional\":null}",
            "{\"critical\":{\"identity\":{\"docker-reference\":\"h/r\"},\"image\":{\"docker-manifest-digest\":\"" + digest + "\"},\"type\":\"atomic container signature\"},\"optional\":null}",
            "{\"critical\":{\"identity\":{\"docker-reference\":\"h/r\"},\"image\":{\"docker-manifest-digest\":\"" + digest + "\"},\"type\":\"cosign container image signature\"},\"optional\":null,\"optional\":{}}",
            "{\"critical\":{\"identity\":{\"docker-reference\":\"h/r\"},\"image\":{\"docker-manifest-digest\":\"" + digest + "\"},\"type\":\"cosign container image signature\"},\"optional\":{\"timestamp\":1.5}}",
        })
        {
            Assert.NotNull(SigstorePayloadRules.Parse(Encoding.UTF8.GetBytes(bad)).Error);
        }
        // what it accepts: cosign's annotations, skopeo's creator and timestamp
        Assert.Null(SigstorePayloadRules.Parse(Encoding.UTF8.GetBytes("{\"critical\":{\"identity\":{\"docker-reference\":\"h/r\"},\"image\":{\"docker-manifest-digest\":\"" + digest + "\"},\"type\":\"cosign container image signature\"},\"optional\":{\"creator\":\"c\",\"timestamp\":1700000000,\"a\":\"b\"}}")).Error);
    }

    [Fact]
    public void DSSE_PAE_is_the_specs_example_and_an_envelope_opens_only_with_its_key()
    {
        Assert.Equal("DSSEv1 29 http://example.com/HelloWorld 11 hello world", Encoding.UTF8.GetString(Dsse.Pae("http://example.com/HelloWorld", "hello world"u8)));
        using var key = CosignKeys.LoadPrivateKey(Data("ecdsa_priv.pem"), () => []);
        using var other = CosignKeys.LoadPrivateKey(Data("validecpkcs8.key"), () => []);
        var statement = "{\"_type\":\"https://in-toto.io/Statement/v1\"}"u8.ToArray();
        var envelope = Dsse.Sign(key, Dsse.InTotoPayloadType, statement);
        var opened = Dsse.Open(envelope, key.PublicKey);
        Assert.NotNull(opened);
        Assert.Equal(statement, opened.Value.Payload);
        Assert.Null(Dsse.Open(envelope, other.PublicKey));
        // the signature is over the PAE, which openssl confirms
        using var doc = System.Text.Json.JsonDocument.Parse(envelope);
        var sig = Convert.FromBase64String(doc.RootElement.GetProperty("signatures")[0].GetProperty("sig").GetString()!);
        Assert.True(OpensslVerifies(key.PublicKey.Pem, Dsse.Pae(Dsse.InTotoPayloadType, statement), sig));
    }

    [Fact]
    public void The_provenance_statement_carries_what_in_toto_v1_and_SLSA_v1_require()
    {
        var index = Digest.Sha256("index"u8);
        var bytes = InToto.Provenance(new ProvenanceFacts
        {
            Subjects = [("127.0.0.1:5000/ns/model", index)],
            ModelFiles = [new ResourceDigest("hf://org/name@abc/config.json", new string('a', 64))],
            BaseImages = [("docker://registry.access.redhat.com/ubi9/ubi-micro", Digest.Sha256("base"u8))],
            ExternalParameters = new Dictionary<string, object> { ["model"] = "hf://org/name@abc", ["include"] = new[] { "*.json" } },
            BuilderId = "https://tekton.dev/chains/v2",
            InvocationId = "uid-1",
        });
        using var doc = System.Text.Json.JsonDocument.Parse(bytes);
        var r = doc.RootElement;
        Assert.Equal("https://in-toto.io/Statement/v1", r.GetProperty("_type").GetString());
        Assert.Equal(index.Encoded, r.GetProperty("subject")[0].GetProperty("digest").GetProperty("sha256").GetString());
        Assert.Equal("https://slsa.dev/provenance/v1", r.GetProperty("predicateType").GetString());
        var bd = r.GetProperty("predicate").GetProperty("buildDefinition");
        Assert.False(string.IsNullOrEmpty(bd.GetProperty("buildType").GetString()));
        Assert.Equal(System.Text.Json.JsonValueKind.Object, bd.GetProperty("externalParameters").ValueKind);
        Assert.Equal(2, bd.GetProperty("resolvedDependencies").GetArrayLength());
        Assert.Equal("https://tekton.dev/chains/v2", r.GetProperty("predicate").GetProperty("runDetails").GetProperty("builder").GetProperty("id").GetString());
        Assert.Equal(bytes, InToto.Provenance(new ProvenanceFacts
        {
            Subjects = [("127.0.0.1:5000/ns/model", index)],
            ModelFiles = [new ResourceDigest("hf://org/name@abc/config.json", new string('a', 64))],
            BaseImages = [("docker://registry.access.redhat.com/ubi9/ubi-micro", Digest.Sha256("base"u8))],
            ExternalParameters = new Dictionary<string, object> { ["include"] = new[] { "*.json" }, ["model"] = "hf://org/name@abc" },
            BuilderId = "https://tekton.dev/chains/v2",
            InvocationId = "uid-1",
        }));
    }

    private static byte[] PlainPkcs8()
    {
        using var ec = System.Security.Cryptography.ECDsa.Create();
        ec.ImportFromPem(File.ReadAllText(Data("validecpkcs8.key")));
        return ec.ExportPkcs8PrivateKey();
    }

    /// <summary>openssl dgst -sha256 -verify PUB -signature SIG FILE: the second, independent ECDSA check.</summary>
    internal static bool OpensslVerifies(string publicPem, byte[] data, byte[] derSignature)
    {
        using var dir = new TempDir();
        File.WriteAllText(Path.Combine(dir.Path, "pub.pem"), publicPem);
        File.WriteAllBytes(Path.Combine(dir.Path, "sig.der"), derSignature);
        File.WriteAllBytes(Path.Combine(dir.Path, "data"), data);
        var psi = new System.Diagnostics.ProcessStartInfo("openssl", ["dgst", "-sha256", "-verify", Path.Combine(dir.Path, "pub.pem"), "-signature", Path.Combine(dir.Path, "sig.der"), Path.Combine(dir.Path, "data")])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var p = System.Diagnostics.Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        return p.ExitCode == 0 && output.Contains("Verified OK", StringComparison.Ordinal);
    }
}
