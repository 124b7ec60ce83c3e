using System.Text;
using ModelCar.TestSupport;

namespace ModelCar.RegistryPush.Tests;

/// <summary>
/// Issue 11, against real registries (htpasswd, TLS from a test CA): one run pushes to two
/// registries with different credentials — "quay" from a legacy .dockercfg given to --authfile
/// (the format of OpenShift's generated SA secrets), "internal" from --login with a token file —
/// as an arbitrary UID with HOME unset and an unwritable working directory. A named auth file that
/// is missing fails with one line and exit 1 before anything is sent; --max-blob-size refuses
/// before uploading.
/// </summary>
public sealed class PerRegistryCredentialsTests
{
    [Fact]
    public async Task Two_registries_two_credentials_one_run_as_an_arbitrary_uid()
    {
        using var ca = TestCerts.CreateCa("modelcar-creds-ca");
        var tls = TestCerts.CreateServerCert(ca);
        const string robotPassword = "r0bot-Pa55-quay";
        const string saToken = "sa-token-eyJhbGciOi-not-a-real-jwt";
        await using var quay = await new RegistryContainer(new RegistryContainerOptions { Htpasswd = await AuthAndTlsTests.Htpasswd("org+robot", robotPassword), Tls = tls }).StartAsync();
        await using var internalRegistry = await new RegistryContainer(new RegistryContainerOptions { Htpasswd = await AuthAndTlsTests.Htpasswd("serviceaccount", saToken), Tls = tls }).StartAsync();
        using var tmp = new TempDir();
        using var sandbox = new ArbitraryUid();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(41, 300_000, 5000));
        var caFile = tmp.WriteFile("ca/service-ca.crt", ca.ExportCertificatePem());
        // the quay robot's secret, in the legacy format (and a wrong entry for the internal registry, which --login must beat)
        var dockercfg = tmp.WriteFile("quay-secret/.dockercfg",
            "{\"" + quay.HostPort + "\":{\"auth\":\"" + B64("org+robot:" + robotPassword) + "\",\"email\":\"robot@example.org\"},"
            + "\"" + internalRegistry.HostPort + "\":{\"auth\":\"" + B64("serviceaccount:stale") + "\"}}");
        var tokenFile = tmp.WriteFile("sa/token", saToken + "\n");
        var results = tmp.Combine("results");
        ArbitraryUid.AllowRead(image.LayoutPath);
        ArbitraryUid.AllowRead(tmp.Combine("quay-secret"));
        ArbitraryUid.AllowRead(tmp.Combine("sa"));
        ArbitraryUid.AllowRead(tmp.Combine("ca"));
        ArbitraryUid.AllowWrite(results);

        var r = await sandbox.RunAsync("registry-push", ["--source", $"oci:{image.LayoutPath}:v1",
            "--dest", $"docker://{internalRegistry.HostPort}/ns/model:v1", "--dest", $"docker://{quay.HostPort}/org/model:v1",
            "--authfile", dockercfg, "--login", $"{internalRegistry.HostPort}=serviceaccount:{tokenFile}",
            "--ca-file", caFile, "--max-blob-size", "20G", "--results-dir", results]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal($"{internalRegistry.HostPort}/ns/model@{image.ManifestDigest}\n{quay.HostPort}/org/model@{image.ManifestDigest}", r.StdOut.Trim());
        Assert.Equal(image.ManifestDigest, File.ReadAllText(Path.Combine(results, "IMAGE_DIGEST")));
        Assert.Equal(image.ManifestDigest, await Skopeo.InspectDigestAsync($"{quay.HostPort}/org/model:v1", "--creds", $"org+robot:{robotPassword}"));
        Assert.Equal(image.ManifestDigest, await Skopeo.InspectDigestAsync($"{internalRegistry.HostPort}/ns/model:v1", "--creds", $"serviceaccount:{saToken}"));
        Assert.DoesNotContain(robotPassword, r.AllOutput);
        Assert.DoesNotContain(saToken, r.AllOutput);
        sandbox.AssertNothingWritten();

        // a named auth file that is not there: one line naming it, exit 1, nothing sent (the registry stays empty)
        var missing = tmp.Combine("quay-secret", ".dockerconfigjson");
        var noFile = await sandbox.RunAsync("registry-push", ["--source", $"oci:{image.LayoutPath}:v1", "--dest", $"docker://{quay.HostPort}/org/other:v1",
            "--authfile", missing, "--ca-file", caFile]);
        Assert.Equal(1, noFile.ExitCode);
        Assert.Equal($"registry-push: error: auth file '{missing}' does not exist", noFile.StdErr.Trim());
        var absent = await PeerTools.RunAsync("skopeo", ["inspect", "--tls-verify=false", "--creds", $"org+robot:{robotPassword}", $"docker://{quay.HostPort}/org/other:v1"]);
        Assert.NotEqual(0, absent.ExitCode);

        // a blob over --max-blob-size: refused before any upload, naming the blob and the limit
        var tooBig = await sandbox.RunAsync("registry-push", ["--source", $"oci:{image.LayoutPath}:v1", "--dest", $"docker://{quay.HostPort}/org/big:v1",
            "--authfile", dockercfg, "--ca-file", caFile, "--max-blob-size", "100K"]);
        Assert.Equal(1, tooBig.ExitCode);
        Assert.Matches(@"^registry-push: error: blob sha256:[0-9a-f]{64} is 293\.0 KiB \(300000 bytes\), over --max-blob-size 100\.0 KiB \(102400 bytes\)", tooBig.StdErr.Trim());
        Assert.Single(tooBig.StdErr.Trim().Split('\n')); // the error line only: no request, no blob line
        absent = await PeerTools.RunAsync("skopeo", ["inspect", "--tls-verify=false", "--creds", $"org+robot:{robotPassword}", $"docker://{quay.HostPort}/org/big:v1"]);
        Assert.NotEqual(0, absent.ExitCode);
        sandbox.AssertNothingWritten();
    }

    private static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));
}
