using ModelCar.ModelRegistry;

namespace ModelCar.MrRegister.Tests;

/// <summary>The registration values the library checks are each named by one option of `register`.</summary>
public sealed class OptionTests
{
    [Fact]
    public void Every_registration_value_maps_to_an_option_of_register()
    {
        var register = MrRegisterCommand.Create().Subcommands.Single(c => c.Name == "register");
        var names = register.Options.Select(o => o.Name).ToHashSet();
        foreach (var field in Enum.GetValues<RegistrationField>())
        {
            var flag = RegisterOptions.Flag(field);
            Assert.True(names.Contains(flag), $"{field} maps to '{flag}', not an option of register");
        }
        Assert.Equal(Enum.GetValues<RegistrationField>().Length, Enum.GetValues<RegistrationField>().Select(RegisterOptions.Flag).Distinct().Count());
    }

    [Fact]
    public void A_library_failure_reads_with_the_option_names()
    {
        var e = Assert.Throws<RegistrationInputException>(() => RegistrationProperties.WithProvenance([], new Provenance { ImageDigest = "sha256:abc" }));
        Assert.Equal("--image-digest 'sha256:abc' is not sha256:<64 hex digits>", e.Render(RegisterOptions.Flag));
        var both = Assert.Throws<RegistrationInputException>(() =>
            RegistrationProperties.WithProvenance(new() { [ModelCarProperties.HfCommit] = MetadataValue.Of("x") }, new Provenance { HfCommit = "y" }));
        Assert.Equal("--hf-commit and --property 'hf-commit' both set 'hf-commit': give it once", both.Render(RegisterOptions.Flag));
    }
}
