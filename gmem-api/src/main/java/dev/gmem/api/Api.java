package dev.gmem.api;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Stability marker carried by every public gmem type, in the spirit of JUnit's {@code @API}:
 * VMM builders and plugin vendors can tell what they may rely on across releases.
 */
@Documented
@Retention(RetentionPolicy.CLASS)
@Target({ElementType.TYPE, ElementType.METHOD, ElementType.CONSTRUCTOR, ElementType.FIELD})
@Api(status = Api.Status.STABLE, since = "0.1")
public @interface Api {

  /** How stable the annotated element is. */
  Status status();

  /** The gmem version that introduced the element at its current status. */
  String since() default "";

  /** Stability levels. */
  enum Status {
    /** Will not change incompatibly within a major version. SPIs grow only by default methods. */
    STABLE,
    /** Mirrors an upstream kernel proposal that is still under review; may change with it. */
    EXPERIMENTAL,
    /** Visible for plugins or tools, not for VMM code. */
    INTERNAL,
    /** Scheduled for removal. */
    DEPRECATED
  }
}
