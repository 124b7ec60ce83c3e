using System.Text.Json;
using ModelCar.TestSupport;

namespace ModelCar.RegistryPush.Tests;

/// <summary>skopeo as the judge of what landed in the registry.</summary>
internal static class Skopeo
{
    public static async Task<string> InspectDigestAsync(string image, params string[] extra)
    {
        var r = await PeerTools.RunAsync("skopeo", ["inspect", "--tls-verify=false", .. extra, $"docker://{image}"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        using var doc = JsonDocument.Parse(r.StdOut);
        return doc.RootElement.GetProperty("Digest").GetString()!;
    }

    public static async Task<string> InspectRawAsync(string image, params string[] extra)
    {
        var r = await PeerTools.RunAsync("skopeo", ["inspect", "--raw", "--tls-verify=false", .. extra, $"docker://{image}"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        return r.StdOut;
    }

    /// <summary>Copies the image back into an oci: layout and checks every blob is byte-identical.</summary>
    public static async Task AssertPullsBackAsync(string image, TestImage expected, string workDir, params string[] extra)
    {
        var back = Path.Combine(workDir, "pulled-" + Guid.NewGuid().ToString("N")[..8]);
        var r = await PeerTools.RunAsync("skopeo", ["copy", "--preserve-digests", "--src-tls-verify=false", .. extra, $"docker://{image}", $"oci:{back}:pulled"]);
        Assert.True(r.ExitCode == 0, r.ToString());
        using var index = JsonDocument.Parse(File.ReadAllText(Path.Combine(back, "index.json")));
        var manifestDigest = index.RootElement.GetProperty("manifests")[0].GetProperty("digest").GetString()!;
        Assert.Equal(expected.ManifestDigest, manifestDigest);
        foreach (var blob in expected.Blobs)
        {
            var path = Path.Combine(back, "blobs", "sha256", blob.Digest["sha256:".Length..]);
            Assert.True(File.Exists(path), $"blob {blob.Digest} missing after skopeo copy");
            Assert.Equal(blob.Content, File.ReadAllBytes(path));
        }
    }
}
