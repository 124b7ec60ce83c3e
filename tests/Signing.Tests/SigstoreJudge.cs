using System.Text.Json;
using ModelCar.TestSupport;

namespace ModelCar.Signing.Tests;

/// <summary>
/// npm's @sigstore/verify@3 + @sigstore/bundle@4 (tests/Signing.Tests/judge, installed by
/// scripts/prerequisites.sh with npm ci) verifying a bundle with a public key as the only trust material.
/// Node or the packages missing is a failure, never a skip.
/// </summary>
public static class SigstoreJudge
{
    public static string Dir => Path.Combine(RepoPaths.Root, "tests", "Signing.Tests", "judge");

    public sealed record Verdict(bool Ok, string? Error, JsonElement? Statement, string Raw);

    /// <summary>Runs the judge on <paramref name="bundle"/>; <paramref name="hint"/> is cosign or model_signing.</summary>
    public static async Task<Verdict> VerifyAsync(byte[] bundle, string publicKeyPem, string hint)
    {
        Assert.True(PeerTools.Which("node") is not null, "node is not installed: the Sigstore bundle judge needs Node 20 (scripts/prerequisites.sh)");
        Assert.True(File.Exists(Path.Combine(Dir, "node_modules", "@sigstore", "verify", "package.json")) && File.Exists(Path.Combine(Dir, "node_modules", "@sigstore", "bundle", "package.json")),
            $"@sigstore/verify and @sigstore/bundle are not installed in {Dir}: run scripts/prerequisites.sh (npm ci there)");
        using var tmp = new TempDir("judge");
        var bundlePath = tmp.Combine("bundle.json");
        var keyPath = tmp.Combine("key.pub");
        await File.WriteAllBytesAsync(bundlePath, bundle);
        await File.WriteAllTextAsync(keyPath, publicKeyPem);
        var r = await PeerTools.RunAsync("node", [Path.Combine(Dir, "verify-bundle.mjs"), "--bundle", bundlePath, "--key", keyPath, "--hint", hint], TimeSpan.FromMinutes(1));
        var line = r.StdOut.Trim();
        Assert.True(line.StartsWith('{'), $"the judge printed no verdict (exit {r.ExitCode}): {r.StdOut} {r.StdErr}");
        using var doc = JsonDocument.Parse(line);
        bool ok = doc.RootElement.GetProperty("ok").GetBoolean();
        Assert.Equal(ok ? 0 : 1, r.ExitCode);
        return new Verdict(ok, doc.RootElement.TryGetProperty("error", out var e) ? e.GetString() : null,
            doc.RootElement.TryGetProperty("statement", out var s) ? s.Clone() : null, line);
    }
}
