package dev.gmem.core.plugin;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.net.URI;
import java.net.URL;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class LocationsTest {

  private static final String RESOURCE = "META-INF/services/dev.gmem.api.spi.ArchProvider";

  @Test
  void servicesFileInAJarIsLocatedAtTheJar() throws Exception {
    Path jar = Path.of("/opt/plugins/gmem-arch-snp-1.0.jar");
    URL url = URI.create("jar:" + jar.toUri() + "!/" + RESOURCE).toURL();

    assertEquals(jar.toString(), Locations.ofResource(url, RESOURCE));
  }

  @Test
  void servicesFileInADirectoryIsLocatedAtTheDirectory() throws Exception {
    Path classes = Path.of("/work/build/classes");
    URL url = classes.resolve(RESOURCE).toUri().toURL();

    assertEquals(classes.toString(), Locations.ofResource(url, RESOURCE));
  }

  @Test
  void nonFileUrlsAreShownAsTheyAre() throws Exception {
    URL url = URI.create("jrt:/java.base").toURL();

    assertEquals("jrt:/java.base", Locations.render(url));
  }

  @Test
  void classWithoutCodeSourceHasAnUnknownLocation() {
    assertEquals("unknown location", Locations.of(String.class));
  }
}
