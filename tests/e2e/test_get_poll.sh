#!/usr/bin/env bash
IO=poll
source "$(dirname "$0")/get_cases.sh"
