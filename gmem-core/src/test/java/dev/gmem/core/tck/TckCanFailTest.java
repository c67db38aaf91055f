package dev.gmem.core.tck;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.platform.engine.discovery.DiscoverySelectors.selectMethod;

import dev.gmem.tck.Contract;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.platform.engine.TestExecutionResult;
import org.junit.platform.testkit.engine.EngineExecutionResults;
import org.junit.platform.testkit.engine.EngineTestKit;
import org.junit.platform.testkit.engine.Event;

/**
 * Proof that the kit can fail: each deliberately broken arch or allocator runs its contract's kit
 * test through the JUnit Platform (EngineTestKit, a nested engine run on the real runtime), and that
 * test must fail with a message naming the contract.
 */
class TckCanFailTest {
  static Stream<Arguments> brokenFixtures() {
    return Stream.of(
        Arguments.of(BrokenArches.PrepareFailsOnce.class, "prepareOncePerPageOnFirstPrivateUse", Contract.PREPARE_ONCE),
        Arguments.of(BrokenArches.CommitThrows.class, "invalidateOnlyAfterThePointOfNoReturn", Contract.INVALIDATE_PONR),
        Arguments.of(BrokenArches.AbortKeepsOwnership.class, "aVetoLeavesEverythingUnchanged", Contract.VETO),
        Arguments.of(BrokenArches.PopulateDropsSource.class, "populateOnlyIntoPrivatePages", Contract.POPULATE_PRIVATE),
        Arguments.of(BrokenArches.ClaimsPreserve.class, "contentEffectsAsSeenThroughGmem", Contract.CONTENT_EFFECT),
        Arguments.of(BrokenArches.MapsPrivateHuge.class, "maxMappingOrderHonouredByBothVcpuPaths", Contract.MAX_MAPPING_ORDER),
        Arguments.of(BrokenArches.HostFaultsPrivate.class, "hostMayFaultAskedOnEveryHostFaultPath", Contract.HOST_MAY_FAULT),
        Arguments.of(BrokenArches.AcceptsInitShared.class, "flagsRefusedWhereTheArchSaysSo", Contract.FLAGS_REFUSED),
        Arguments.of(BrokenArches.InvalidateThrows.class, "aLeakedPageNeverReturnsToTheAllocator", Contract.LEAK_ON_FAILURE),
        Arguments.of(BrokenArches.StaleHostAnswer.class, "aConversionRacingFaultsNeverExposesAPrivatePage", Contract.CONVERSION_RACE),
        Arguments.of(BrokenArches.AcceptsAnyPopulateFlags.class, "badInputFailsWithItsErrnoAndChangesNothing", Contract.BAD_INPUT),
        Arguments.of(BrokenAllocators.AbortThrows.class, "splitAndMergeAreStagedAndAHugeFolioIsFreedOnceWhole", Contract.ALLOC_SPLIT_MERGE),
        Arguments.of(BrokenAllocators.NoReservation.class, "enomemArrivesBeforeAnythingChanged", Contract.ALLOC_ENOMEM),
        Arguments.of(BrokenAllocators.MergeRefused.class, "punchRules", Contract.ALLOC_PUNCH));
  }

  @ParameterizedTest(name = "{2}: {0}")
  @MethodSource("brokenFixtures")
  void eachBrokenFixtureFailsItsContract(Class<?> fixture, String test, Contract contract) {
    EngineExecutionResults results = EngineTestKit.engine("junit-jupiter").selectors(selectMethod(fixture.getName() + "#" + test)).execute();
    assertEquals(1, results.testEvents().started().count(), "the kit test ran");
    Event failed = results.testEvents().failed().stream().findFirst()
        .orElseThrow(() -> new AssertionError(fixture.getSimpleName() + " passed " + test + ": the kit cannot see its bug"));
    Throwable t = failed.getPayload(TestExecutionResult.class).flatMap(TestExecutionResult::getThrowable).orElseThrow();
    String message = messages(t);
    assertTrue(message.contains("[" + contract.id() + "]"), () -> fixture.getSimpleName() + " failed " + test + " without naming " + contract.id() + ": " + message);
    System.out.println(fixture.getSimpleName() + " → " + firstLine(message));
  }

  private static String messages(Throwable t) {
    StringBuilder b = new StringBuilder();
    for (Throwable c = t; c != null; c = c.getCause()) {
      b.append(c).append('\n');
    }
    return b.toString();
  }

  private static String firstLine(String s) {
    int i = s.indexOf('\n');
    return i < 0 ? s : s.substring(0, i);
  }
}
