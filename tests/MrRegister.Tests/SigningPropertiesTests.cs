using ModelCar.Common.Cli;
using ModelCar.ModelRegistry;

namespace ModelCar.MrRegister.Tests;

/// <summary>The signing properties mr-register records (issue 18 item 4) and how the verifier reads them back.</summary>
public sealed class SigningPropertiesTests
{
    private static readonly string A = "sha256:" + new string('a', 64);
    private static readonly string B = "sha256:" + new string('b', 64);

    [Fact]
    public void Signing_digests_are_checked_and_recorded_as_strings()
    {
        var p = MrRegisterCommand.WithProvenance([], null, "c0ffee", A, null, null, new MrRegisterCommand.SigningRecord(B, $" {A} ,{B},", A));
        Assert.Equal(B, p[ModelCarProperties.ModelFilesDigest].StringValue);
        Assert.Equal($"{A},{B}", p[ModelCarProperties.SignatureDigests].StringValue); // spaces and empty items dropped
        Assert.Equal(A, p[ModelCarProperties.AttestationDigests].StringValue);
        // "" from an unsigned Tekton run records nothing
        var none = MrRegisterCommand.WithProvenance([], null, null, null, null, null, new MrRegisterCommand.SigningRecord(null, null, null));
        Assert.Empty(none);
        Assert.Contains("--signature-digests", Assert.Throws<UsageException>(() => MrRegisterCommand.WithProvenance([], null, null, null, null, null, new MrRegisterCommand.SigningRecord(null, $"{A},sha256:xyz", null))).Message);
        Assert.Contains("--model-files-digest", Assert.Throws<UsageException>(() => MrRegisterCommand.WithProvenance([], null, null, null, null, null, new MrRegisterCommand.SigningRecord("abc", null, null))).Message);
        // a key given both as --property and typed
        Assert.Throws<UsageException>(() => MrRegisterCommand.WithProvenance(new() { [ModelCarProperties.ModelFilesDigest] = MetadataValue.Of(A) }, null, null, null, null, null, new MrRegisterCommand.SigningRecord(B, null, null)));
    }

    [Fact]
    public void The_verifier_reads_the_typed_key_or_the_pipelines_underscore_key_and_refuses_a_contradiction()
    {
        static ModelArtifact With(params (string Key, string Value)[] props) => new() { Id = "3", CustomProperties = props.ToDictionary(p => p.Key, p => MetadataValue.Of(p.Value)) };
        Assert.Equal("c0ffee", ModelCarProperties.Get(With(("hf_commit", "c0ffee")), ModelCarProperties.HfCommit));
        Assert.Equal("c0ffee", ModelCarProperties.Get(With(("hf-commit", "c0ffee"), ("hf_commit", "c0ffee")), ModelCarProperties.HfCommit));
        Assert.Null(ModelCarProperties.Get(With(("hf-commit", " ")), ModelCarProperties.HfCommit));
        Assert.Contains("contradicts itself", Assert.Throws<ModelRegistryException>(() => ModelCarProperties.Get(With(("image-digest", A), ("image_digest", B)), ModelCarProperties.ImageDigest)).Message);
        Assert.Equal(A, ModelCarProperties.UriDigest($"oci://quay.io/org/m@{A}"));
        Assert.Null(ModelCarProperties.UriDigest("oci://quay.io/org/m:tag"));
    }
}
