using System.Formats.Asn1;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Org.BouncyCastle.Crypto.Generators;

namespace ModelCar.Signing;

/// <summary>
/// Cosign's key files: the encrypted private key <c>cosign generate-key-pair</c> writes (PEM
/// <c>ENCRYPTED SIGSTORE PRIVATE KEY</c>, or <c>ENCRYPTED COSIGN PRIVATE KEY</c> before cosign
/// 2.0.1; body = JSON with scrypt N ∈ {32768, 65536, 131072}, r = 8, p = 1 and a nacl/secretbox
/// holding a PKCS#8 key), a plain PKCS#8 PEM (<c>PRIVATE KEY</c>, or SEC1 <c>EC PRIVATE KEY</c>), and
/// the public key (<c>PUBLIC KEY</c>, PKIX). Only ECDSA P-256 is signed with. Messages name the file,
/// never its content.
/// </summary>
public static class CosignKeys
{
    public const string SigstoreLabel = "ENCRYPTED SIGSTORE PRIVATE KEY";
    public const string CosignLabel = "ENCRYPTED COSIGN PRIVATE KEY";
    public const int MaxKeyFileBytes = 64 * 1024;

    /// <summary>The scrypt work factors go-securesystemslib accepts when decrypting (r = 8, p = 1).</summary>
    public static readonly IReadOnlySet<int> AllowedScryptN = new HashSet<int> { 32768, 65536, 131072 };

    private const string EcPublicKeyOid = "1.2.840.10045.2.1";
    private const string P256Oid = "1.2.840.10045.3.1.7";

    /// <summary>Loads a private key file; <paramref name="password"/> is asked for only when the key is encrypted.</summary>
    public static SigningKey LoadPrivateKey(string path, Func<byte[]> password)
    {
        var text = ReadPem(path, "private key");
        if (!PemEncoding.TryFind(text, out var fields))
        {
            throw new SigningException($"private key {path}: no PEM block", SigningFailure.UnsupportedKey);
        }
        var label = text[fields.Label].ToString();
        byte[] der;
        try
        {
            der = Convert.FromBase64String(text[fields.Base64Data].ToString());
        }
        catch (FormatException)
        {
            throw new SigningException($"private key {path}: the PEM body is not base64", SigningFailure.UnsupportedKey);
        }
        switch (label)
        {
            case SigstoreLabel or CosignLabel:
                var pw = password();
                try
                {
                    var pkcs8 = Decrypt(path, der, pw);
                    try
                    {
                        return FromPkcs8(path, pkcs8);
                    }
                    finally
                    {
                        CryptographicOperations.ZeroMemory(pkcs8);
                    }
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(pw);
                }
            case "PRIVATE KEY":
                try
                {
                    return FromPkcs8(path, der);
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(der);
                }
            case "EC PRIVATE KEY":
                try
                {
                    var ec = ECDsa.Create();
                    try
                    {
                        ec.ImportECPrivateKey(der, out _);
                    }
                    catch (CryptographicException e)
                    {
                        ec.Dispose();
                        throw new SigningException($"private key {path}: not a readable EC private key", SigningFailure.UnsupportedKey, e);
                    }
                    return new SigningKey(CheckP256(path, ec));
                }
                finally
                {
                    CryptographicOperations.ZeroMemory(der);
                }
            default:
                throw new SigningException($"private key {path}: PEM '{label}' is not a cosign key nor a PKCS#8 EC P-256 key", SigningFailure.UnsupportedKey);
        }
    }

    /// <summary>Loads a public key file (PEM <c>PUBLIC KEY</c>, EC P-256).</summary>
    public static VerificationKey LoadPublicKey(string path) => ParsePublicKey(ReadPem(path, "public key"), path);

    /// <summary>Parses a public key PEM (EC P-256); <paramref name="what"/> names it in errors.</summary>
    public static VerificationKey ParsePublicKey(string pem, string what)
    {
        if (!PemEncoding.TryFind(pem, out var fields) || pem[fields.Label] is not "PUBLIC KEY")
        {
            throw new SigningException($"public key {what}: no PEM 'PUBLIC KEY' block", SigningFailure.UnsupportedKey);
        }
        var ec = ECDsa.Create();
        try
        {
            ec.ImportSubjectPublicKeyInfo(Convert.FromBase64String(pem[fields.Base64Data].ToString()), out _);
        }
        catch (Exception e) when (e is CryptographicException or FormatException)
        {
            ec.Dispose();
            throw new SigningException($"public key {what}: not an EC public key (only ECDSA P-256 is supported)", SigningFailure.UnsupportedKey, e);
        }
        return new VerificationKey(CheckP256(what, ec));
    }

    /// <summary>
    /// Encrypts a PKCS#8 key the way cosign does (for tests and for converting a plain key): scrypt
    /// with <paramref name="n"/>, r = 8, p = 1, a random 32-byte salt and 24-byte nonce.
    /// </summary>
    public static string EncryptToPem(byte[] pkcs8, byte[] password, int n = 65536, string label = SigstoreLabel)
    {
        var salt = RandomNumberGenerator.GetBytes(32);
        var nonce = RandomNumberGenerator.GetBytes(SecretBox.NonceSize);
        var key = SCrypt.Generate(password, salt, n, 8, 1, SecretBox.KeySize);
        var body = new EncryptedKeyBody
        {
            Kdf = new EncryptedKeyKdf { Name = "scrypt", Params = new ScryptParams { N = n, R = 8, P = 1 }, Salt = salt },
            Cipher = new EncryptedKeyCipher { Name = "nacl/secretbox", Nonce = nonce },
            Ciphertext = SecretBox.Seal(pkcs8, key, nonce),
        };
        CryptographicOperations.ZeroMemory(key);
        var json = JsonSerializer.SerializeToUtf8Bytes(body, SigningJsonContext.Default.EncryptedKeyBody);
        return PemEncoding.WriteString(label, json) + "\n";
    }

    private static string ReadPem(string path, string what)
    {
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists)
            {
                throw new SigningException($"{what} {path}: no such file", SigningFailure.KeyFile);
            }
            if (info.Length > MaxKeyFileBytes)
            {
                throw new SigningException($"{what} {path}: {info.Length} bytes, more than a key file holds ({MaxKeyFileBytes})", SigningFailure.UnsupportedKey);
            }
            return File.ReadAllText(path, Encoding.UTF8);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SigningException($"{what} {path}: cannot read it: {e.Message}", SigningFailure.KeyFile, e);
        }
    }

    private static byte[] Decrypt(string path, byte[] json, byte[] password)
    {
        EncryptedKeyBody? body;
        try
        {
            body = JsonSerializer.Deserialize(json, SigningJsonContext.Default.EncryptedKeyBody);
        }
        catch (JsonException e)
        {
            throw new SigningException($"private key {path}: the encrypted key's body is not cosign's JSON", SigningFailure.UnsupportedKey, e);
        }
        if (body is not { Kdf: { Name: "scrypt", Params: { } p, Salt: { Length: > 0 } salt }, Cipher: { Name: "nacl/secretbox", Nonce: { } nonce }, Ciphertext: { } box })
        {
            throw new SigningException($"private key {path}: not a scrypt + nacl/secretbox encrypted key", SigningFailure.UnsupportedKey);
        }
        if (!AllowedScryptN.Contains(p.N) || p.R != 8 || p.P != 1)
        {
            throw new SigningException($"private key {path}: unexpected scrypt parameters N={p.N} r={p.R} p={p.P} (cosign uses N 32768, 65536 or 131072, r 8, p 1)", SigningFailure.UnsupportedKey);
        }
        if (nonce.Length != SecretBox.NonceSize)
        {
            throw new SigningException($"private key {path}: secretbox nonce of {nonce.Length} bytes (expected {SecretBox.NonceSize})", SigningFailure.UnsupportedKey);
        }
        var key = SCrypt.Generate(password, salt, p.N, p.R, p.P, SecretBox.KeySize);
        try
        {
            return SecretBox.Open(box, key, nonce)
                ?? throw new SigningException($"private key {path}: decryption failed: wrong password (or a damaged key file)", SigningFailure.WrongPassword);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }

    private static SigningKey FromPkcs8(string path, byte[] pkcs8)
    {
        var (algorithm, curve) = Pkcs8Algorithm(path, pkcs8);
        if (algorithm != EcPublicKeyOid)
        {
            throw new SigningException($"private key {path}: {AlgorithmName(algorithm)} key, only ECDSA P-256 is supported", SigningFailure.UnsupportedKey);
        }
        if (curve != P256Oid)
        {
            throw new SigningException($"private key {path}: EC key on curve {CurveName(curve)}, only P-256 is supported", SigningFailure.UnsupportedKey);
        }
        var ec = ECDsa.Create();
        try
        {
            ec.ImportPkcs8PrivateKey(pkcs8, out _);
        }
        catch (CryptographicException e)
        {
            ec.Dispose();
            throw new SigningException($"private key {path}: not a readable PKCS#8 EC key", SigningFailure.UnsupportedKey, e);
        }
        return new SigningKey(CheckP256(path, ec));
    }

    /// <summary>PrivateKeyInfo ::= SEQUENCE { version, AlgorithmIdentifier { OID, parameters }, OCTET STRING }.</summary>
    private static (string Algorithm, string? Curve) Pkcs8Algorithm(string path, byte[] der)
    {
        try
        {
            var seq = new AsnReader(der, AsnEncodingRules.BER).ReadSequence();
            seq.ReadInteger();
            var alg = seq.ReadSequence();
            var oid = alg.ReadObjectIdentifier();
            string? curve = alg.HasData && alg.PeekTag().HasSameClassAndValue(Asn1Tag.ObjectIdentifier) ? alg.ReadObjectIdentifier() : null;
            return (oid, curve);
        }
        catch (AsnContentException e)
        {
            throw new SigningException($"private key {path}: the key is not PKCS#8 (cosign keys hold PKCS#8)", SigningFailure.UnsupportedKey, e);
        }
    }

    private static ECDsa CheckP256(string what, ECDsa ec)
    {
        var curve = ec.ExportParameters(false).Curve;
        if (curve.Oid?.Value != P256Oid && curve.Oid?.FriendlyName is not ("nistP256" or "ECDSA_P256" or "prime256v1"))
        {
            var name = curve.Oid?.Value is { } oid ? CurveName(oid) : curve.Oid?.FriendlyName ?? "explicit parameters";
            ec.Dispose();
            throw new SigningException($"key {what}: EC key on curve {name}, only P-256 is supported", SigningFailure.UnsupportedKey);
        }
        return ec;
    }

    private static string AlgorithmName(string oid) => oid switch
    {
        "1.2.840.113549.1.1.1" => "an RSA",
        "1.3.101.112" => "an Ed25519",
        "1.3.101.113" => "an Ed448",
        _ => $"a {oid}",
    };

    private static string CurveName(string? oid) => oid switch
    {
        "1.3.132.0.34" => "P-384",
        "1.3.132.0.35" => "P-521",
        "1.3.132.0.33" => "P-224",
        "1.3.132.0.10" => "secp256k1",
        "nistP384" or "ECDSA_P384" or "secp384r1" => "P-384",
        "nistP521" or "ECDSA_P521" or "secp521r1" => "P-521",
        null => "(none named)",
        _ => oid,
    };
}

/// <summary>An ECDSA P-256 private key: signs SHA-256 digests, signatures DER (as sigstore's ECDSA signer).</summary>
public sealed class SigningKey : IDisposable
{
    private readonly ECDsa _key;

    internal SigningKey(ECDsa key)
    {
        _key = key;
        PublicKey = new VerificationKey(ECDsa.Create(key.ExportParameters(false)));
    }

    public VerificationKey PublicKey { get; }

    /// <summary>ASN.1 DER ECDSA signature over SHA-256 of <paramref name="data"/>.</summary>
    public byte[] Sign(ReadOnlySpan<byte> data) => _key.SignData(data, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence);

    public void Dispose()
    {
        _key.Dispose();
        PublicKey.Dispose();
    }

    /// <summary>Never the key.</summary>
    public override string ToString() => "ECDSA P-256 private key";
}

/// <summary>An ECDSA P-256 public key.</summary>
public sealed class VerificationKey : IDisposable
{
    private readonly ECDsa _key;

    internal VerificationKey(ECDsa key) => _key = key;

    /// <summary>SubjectPublicKeyInfo DER.</summary>
    public byte[] Spki => _key.ExportSubjectPublicKeyInfo();

    /// <summary>PEM <c>PUBLIC KEY</c>, as cosign.pub.</summary>
    public string Pem => PemEncoding.WriteString("PUBLIC KEY", Spki) + "\n";

    /// <summary>sha256 hex of the SubjectPublicKeyInfo: how a key is named in logs and bundle hints.</summary>
    public string Fingerprint => Convert.ToHexStringLower(SHA256.HashData(Spki));

    /// <summary>Verifies a DER (or, as sigstore also accepts, IEEE P1363) ECDSA signature over SHA-256 of <paramref name="data"/>.</summary>
    public bool Verify(ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature)
    {
        try
        {
            return _key.VerifyData(data, signature, HashAlgorithmName.SHA256, DSASignatureFormat.Rfc3279DerSequence)
                || (signature.Length == 64 && _key.VerifyData(data, signature, HashAlgorithmName.SHA256, DSASignatureFormat.IeeeP1363FixedFieldConcatenation));
        }
        catch (CryptographicException)
        {
            return false;
        }
    }

    public void Dispose() => _key.Dispose();
}
