using System.Security.Cryptography;
using Org.BouncyCastle.Crypto.Engines;
using Org.BouncyCastle.Crypto.Macs;
using Org.BouncyCastle.Crypto.Parameters;

namespace ModelCar.Signing;

/// <summary>
/// NaCl secretbox (XSalsa20-Poly1305, as golang.org/x/crypto/nacl/secretbox) composed from
/// BouncyCastle's XSalsa20 and Poly1305: the first 32 bytes of the XSalsa20 keystream are the
/// one-time Poly1305 key, the message is XORed with the keystream from byte 32 on, and the box is
/// tag (16 bytes) ‖ ciphertext.
/// </summary>
public static class SecretBox
{
    public const int KeySize = 32;
    public const int NonceSize = 24;
    public const int Overhead = 16;

    /// <summary>Opens a box; null if the tag does not match (wrong key or damaged data).</summary>
    public static byte[]? Open(ReadOnlySpan<byte> box, byte[] key, byte[] nonce)
    {
        Check(key, nonce);
        if (box.Length < Overhead)
        {
            return null;
        }
        var stream = Stream(key, nonce, out var polyKey);
        var tag = box[..Overhead];
        var cipher = box[Overhead..].ToArray();
        var expected = Mac(polyKey, cipher);
        CryptographicOperations.ZeroMemory(polyKey);
        if (!CryptographicOperations.FixedTimeEquals(tag, expected))
        {
            return null;
        }
        var plain = new byte[cipher.Length];
        stream.ProcessBytes(cipher, 0, cipher.Length, plain, 0);
        return plain;
    }

    /// <summary>Seals a message (tag ‖ ciphertext).</summary>
    public static byte[] Seal(ReadOnlySpan<byte> message, byte[] key, byte[] nonce)
    {
        Check(key, nonce);
        var stream = Stream(key, nonce, out var polyKey);
        var box = new byte[Overhead + message.Length];
        var plain = message.ToArray();
        stream.ProcessBytes(plain, 0, plain.Length, box, Overhead);
        CryptographicOperations.ZeroMemory(plain);
        Mac(polyKey, box.AsSpan(Overhead).ToArray()).CopyTo(box, 0);
        CryptographicOperations.ZeroMemory(polyKey);
        return box;
    }

    private static void Check(byte[] key, byte[] nonce)
    {
        if (key.Length != KeySize || nonce.Length != NonceSize)
        {
            throw new ArgumentException($"secretbox needs a {KeySize}-byte key and a {NonceSize}-byte nonce");
        }
    }

    private static XSalsa20Engine Stream(byte[] key, byte[] nonce, out byte[] polyKey)
    {
        var engine = new XSalsa20Engine();
        engine.Init(true, new ParametersWithIV(new KeyParameter(key), nonce));
        polyKey = new byte[32];
        engine.ProcessBytes(new byte[32], 0, 32, polyKey, 0);
        return engine;
    }

    private static byte[] Mac(byte[] polyKey, byte[] data)
    {
        var mac = new Poly1305();
        mac.Init(new KeyParameter(polyKey));
        mac.BlockUpdate(data, 0, data.Length);
        var tag = new byte[Overhead];
        mac.DoFinal(tag, 0);
        return tag;
    }
}
