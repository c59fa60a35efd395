{#- Reading CustomVars (hauser's JSON column of custom variables), one small macro per warehouse.
    fs_custom_var(col, key) -> the value of one key as text (NULL when absent); keys may hold dots
    (evt_order.total_real), so they are always quoted in the path. fs_json_text(col) -> the whole object as JSON text. -#}

{% macro fs_custom_var(col, key) -%}{{ return(adapter.dispatch('fs_custom_var', 'fullstory')(col, key)) }}{%- endmacro %}

{#- DuckDB: a JSON column (target-duckdb). -#}
{% macro duckdb__fs_custom_var(col, key) -%}json_extract_string({{ col }}, '$."{{ key }}"'){%- endmacro %}

{#- PostgreSQL: jsonb (target-postgres). Rows loaded from Parquet batches hold a jsonb *string* with the JSON text:
    unwrap it first. -#}
{% macro postgres__fs_custom_var(col, key) -%}
({{ fullstory.postgres__fs_jsonb(col) }} ->> '{{ key }}')
{%- endmacro %}
{% macro postgres__fs_jsonb(col) -%}
(case when jsonb_typeof({{ col }}) = 'string' then ({{ col }} #>> '{}')::jsonb else {{ col }} end)
{%- endmacro %}

{#- Snowflake: VARIANT (target-snowflake). -#}
{% macro snowflake__fs_custom_var(col, key) -%}get({{ col }}, '{{ key }}')::varchar{%- endmacro %}

{#- BigQuery: JSON (target-bigquery, denormalized). -#}
{% macro bigquery__fs_custom_var(col, key) -%}json_value({{ col }}, '$."{{ key }}"'){%- endmacro %}

{#- Redshift: SUPER (target-redshift). -#}
{% macro redshift__fs_custom_var(col, key) -%}
json_extract_path_text(json_serialize({{ col }}), '{{ key }}', true)
{%- endmacro %}


{% macro fs_json_text(col) -%}{{ return(adapter.dispatch('fs_json_text', 'fullstory')(col)) }}{%- endmacro %}
{% macro duckdb__fs_json_text(col) -%}cast({{ col }} as varchar){%- endmacro %}
{% macro postgres__fs_json_text(col) -%}({{ fullstory.postgres__fs_jsonb(col) }})::text{%- endmacro %}
{% macro snowflake__fs_json_text(col) -%}to_json({{ col }}){%- endmacro %}
{% macro bigquery__fs_json_text(col) -%}to_json_string({{ col }}){%- endmacro %}
{% macro redshift__fs_json_text(col) -%}json_serialize({{ col }}){%- endmacro %}
